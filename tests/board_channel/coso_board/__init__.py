"""A small channel package, as a vendor would publish one: public boards that show a text and
report by their own message id when it is on screen. Installed in the tests through the
`coso.channels` entry point alone."""
