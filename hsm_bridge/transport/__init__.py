"""How a bridge is reached: the service on a secure host (`service`, mutual TLS from
`link_tls`), its client (`remote`), the JSON shapes they share (`wire`), and the router
that sends each credential to the bridge holding its token (`router`)."""
