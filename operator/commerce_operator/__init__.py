"""The Kopf operator of the commerce platform: one reconciler per custom resource kind."""
