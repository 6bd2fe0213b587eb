"""The control plane: enrollment, identity, presence, fleet state, event stream, REST API."""
