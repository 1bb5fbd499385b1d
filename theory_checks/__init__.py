"""Statistical checks of the theory of sparsely activated networks (run by pytest; check logic importable)."""
