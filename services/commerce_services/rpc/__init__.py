"""gRPC stubs generated from protos/ by `make protos` (run by `make venv`); never edited by hand.

The generated modules live in commerce_services/rpc/commerce/v1/ and are git-ignored.
"""
