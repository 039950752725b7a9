from tests.api.fixtures import cheap_hashes

__all__ = ["cheap_hashes"]
