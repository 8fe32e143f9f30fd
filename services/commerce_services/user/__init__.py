"""User service: accounts in MongoDB, activity tracking, dormancy after 6 months idle."""
