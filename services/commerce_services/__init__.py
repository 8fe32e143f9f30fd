"""The commerce services: user, product, order and payment, one package, one entry point each."""
