"""Public alias: ``domains.quant`` is :mod:`domains.lm.quant` (SPEC §7 names ``domains.quant.fake_quantize``).

The module itself lives with the language-model code that uses it; this package makes the old path the very
same module object (not a copy), so ``domains.quant.fake_quantize is domains.lm.quant.fake_quantize``.
"""

import sys

from domains.lm import quant as _quant

sys.modules[__name__] = _quant
