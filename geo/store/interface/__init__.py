"""The components of the store interface, one protocol per module; :class:`geo.store.base.Store`
is all of them in one handle."""
