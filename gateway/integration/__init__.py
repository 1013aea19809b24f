"""The document system's side: the integration API (`api`) and status callbacks
(`callbacks`)."""
