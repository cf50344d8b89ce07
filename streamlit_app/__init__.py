"""The Streamlit storefront, portals and consoles (entry point: ``Home.py``)."""
