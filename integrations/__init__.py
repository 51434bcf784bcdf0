"""The integrations layer: every vendor API the control plane talks to, behind small adapters.

It imports no app of this project (no billing, provisioning, dns, documents, wopr): adapters take
their configuration, rate budget and catalogue facts as arguments, and return typed values.
`http.py` holds the one request pipeline (`VendorClient`), `errors.py` the shared errors,
`budget.py` the rate-budget protocol, `clouds/` and `dns/` the adapters and their registries.
"""
