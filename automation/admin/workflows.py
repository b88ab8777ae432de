"""Admin for workflows and their runs."""
