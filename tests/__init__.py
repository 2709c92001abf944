"""fastsep's test suite. A package, so that every test (tests/hostile/ included) imports its helpers one way:
``from tests.support import ...``."""
