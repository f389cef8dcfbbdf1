"""HTTP routes: thin handlers that check scope, call a query function and return Structs."""
