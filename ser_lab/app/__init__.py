"""What the app's pages need that is not drawing (no Streamlit here): the page registry, the
corpus in use, run tables, comparisons, Explore lookups, sweeps, access checks, figures and
colours. Imports every lower layer; only the entry points (cli, inference, export, serve) and
the pages above it import it."""
