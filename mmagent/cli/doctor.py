"""mmagent doctor (work in progress)."""
