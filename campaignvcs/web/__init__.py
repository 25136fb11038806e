"""``camp web``: a read-only catalog of a campaign in the browser, served on loopback or exported.

``listing`` (rows, filters, paging), ``render`` (Jinja2 with autoescape, static files),
``app`` (the WSGI routes and their safety), ``server`` (werkzeug on 127.0.0.1) and
``export`` (the static site). The data of each page comes from
``campaignvcs.porcelain.catalog``, handed in: nothing here opens a repository.
"""
