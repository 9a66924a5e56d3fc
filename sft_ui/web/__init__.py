"""What serves HTTP: the app factory, the REST routers, the named Gradio endpoints and the UI."""
