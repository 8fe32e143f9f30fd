"""The product catalog: free-form product documents in MongoDB with variants priced in integer
minor units, their category mapping in MariaDB, and prices over gRPC for the order service."""
