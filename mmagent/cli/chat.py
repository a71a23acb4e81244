"""mmagent chat (work in progress)."""
