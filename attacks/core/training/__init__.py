"""Training a recognizer on arrays (`loop`) and running it over them (`evaluation`)."""
