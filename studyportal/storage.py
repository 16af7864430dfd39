"""Static files storage of the production configuration.

WhiteNoise's compressed manifest storage, with the content hash also written into the
JavaScript modules' relative imports (`from './player.js'` becomes
`from "./player.<hash>.js"`): the participant app and the vendored three.js are ES
modules, and without this a hashed app.js would still load an unhashed player.js that a
browser may have cached from the previous deployment.
"""
from whitenoise.storage import CompressedManifestStaticFilesStorage


class StaticFilesStorage(CompressedManifestStaticFilesStorage):
    support_js_module_import_aggregation = True
