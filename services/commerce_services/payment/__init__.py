"""Payment service: charges orders through a gateway, one payment per order, ever."""
