"""SER Lab home page (placeholder until the app issue lands)."""

import streamlit as st

st.set_page_config(page_title="SER Lab", layout="wide")
st.title("SER Lab")
st.write("Speech emotion recognition with center loss.")
