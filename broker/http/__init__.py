"""HTTP entry points: thin handlers, middleware, problem+json errors."""
