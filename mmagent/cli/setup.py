"""mmagent setup (work in progress)."""
