"""Backup, verify and restore: the archive format (manifest, encryption, verification), the orchestration over a
running stack (which services, in which order, Vault's part), and the forgeries a verify must refuse."""
