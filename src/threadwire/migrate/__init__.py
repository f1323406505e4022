"""Moving a platform onto the unified IDs: the code audit/codemod and stored-ID migration."""
