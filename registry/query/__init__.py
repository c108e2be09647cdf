"""One query language for runs, shared by the Python API, ``cairn runs search`` and the
dashboard::

    from registry.query import search
    page = search('val_acc >= 0.9 and params.lr < 1e-3 and data.train = 61c531c3 "mixup"',
                  sort="-val_acc", limit=20)

Comparisons ``FIELD OP VALUE`` (OP: ``= == != < <= > >= ~``, ``~`` is case-insensitive
"contains") and free text (a bare word or a quoted string standing alone), joined by ``and``
(or nothing), ``or``, ``not`` and parentheses; ``not`` binds tightest, then ``and``, then
``or``. Fields: ``params.KEY``, ``metrics.KEY[.last|.min|.max|.count]`` or a bare metric name,
``tags.KEY``, ``data[.ROLE][.hash|.path]``, and the run attributes in
:data:`registry.query.ATTRIBUTES`. See ``README.md`` for the full grammar.
"""

from registry.query._api import SearchPage as SearchPage
from registry.query._api import count as count
from registry.query._api import count_up_to as count_up_to
from registry.query._api import search as search
from registry.query._api import search_pks as search_pks
from registry.query._api import where as where
from registry.query._fields import ATTRIBUTES as ATTRIBUTES

__all__ = ["ATTRIBUTES", "SearchPage", "count", "count_up_to", "search", "search_pks", "where"]
