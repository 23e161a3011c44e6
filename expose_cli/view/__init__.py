"""`expose view`: one offline page (``index.html``) per output folder of infer, eval and train.

The page works from ``file://`` with no network: three.js (MIT, vendored in ``assets/``) and the
page's own script are copied beside it into ``.view/``; the data are JavaScript files there too
(browsers refuse ``fetch`` on ``file://``), one small manifest read at once and one file per image,
per chunk of video frames or per mesh, read only when shown (``data.py``).
"""
