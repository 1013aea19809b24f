"""The service core: settings, persistence, the signing-request life cycle, PAdES
signing with pyHanko, approvals, audit log, document store and the integration API.

It reaches tokens only through :mod:`hsm_bridge` and never imports :mod:`mobile_api`.
"""
