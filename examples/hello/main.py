class ServiceRunner:
    """The smallest Spool package: one function that greets."""

    def run(self, name):
        return f"hello {name}"
