"""The OpenAPI document in parts by area; ``broker.http.openapi`` assembles and serves it."""
