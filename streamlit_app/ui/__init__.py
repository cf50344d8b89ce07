"""Shared plumbing of the Streamlit pages: resources, sign-in, read side, command helper."""
