"""Vault as the root of trust: its bootstrap (PKI, AppRoles, KV credentials), the CA chain and issued certificates,
certificate status and rotation, password rotation. Below the stacks: nothing here imports them."""
