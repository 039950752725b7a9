"""Apps: the catalog of app templates, installed apps and their lifecycle."""
