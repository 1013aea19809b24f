"""The composition root: the app factory that mounts every router and wires the push
provider into the gateway, and the ``signing-gateway`` command line."""
