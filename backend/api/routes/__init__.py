"""One router per resource; `backend.api.main` mounts them all."""
