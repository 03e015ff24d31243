# SPDX-License-Identifier: MIT
"""The binding's error messages are the library's own, per call: threads failing at once on
one context each get their own message, a refused Context says which argument and why, and
control characters in user strings come back escaped. Run by ctest (entry `python`)."""
import threading
import unittest

import rfjit


class Messages(unittest.TestCase):
    def test_concurrent_failures_keep_their_own_message(self):
        ctx = rfjit.Context(cache_dir="", wisdom_path="")
        wrong = []

        def fail(i):
            for it in range(200):
                by_name = (i + it) % 2
                try:
                    if by_name:
                        ctx.plan(d=8, m=4, estimator="bogus%d" % i)
                    else:
                        ctx.plan(d=2000 + i, m=4)
                except rfjit.Error as e:
                    want = ("unknown estimator 'bogus%d'" % i if by_name
                            else "d = %d is outside" % (2000 + i))
                    if want not in str(e):
                        wrong.append((i, str(e)))
                else:
                    wrong.append((i, "no error"))

        threads = [threading.Thread(target=fail, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(wrong, [], "%d calls read another call's message" % len(wrong))
        ctx.close()

    def test_context_names_the_refused_argument(self):
        # the binding checks numbers itself; names like the ISA are the library's to judge
        for kw, needles in ((dict(threads=-1), ("threads", "-1", "[0, 1024]")),
                            (dict(verbose=-2), ("verbose", "-2")),
                            (dict(isa="avx9\n"), ("unknown ISA 'avx9\\x0a' (avx512, avx2",))):
            with self.assertRaises(rfjit.Error) as cm:
                rfjit.Context(cache_dir="", wisdom_path="", **kw)
            self.assertEqual(cm.exception.status, "RFJIT_E_INVALID_ARG")
            for needle in needles:
                self.assertIn(needle, str(cm.exception))

    def test_control_characters_are_escaped(self):
        ctx = rfjit.Context(cache_dir="", wisdom_path="")
        with self.assertRaises(rfjit.Error) as cm:
            ctx.wisdom_import("/nonexistent-rfjit/a\nb\x1b[31m")
        msg = str(cm.exception)
        self.assertIn("a\\x0ab\\x1b[31m", msg)
        self.assertFalse(any(ord(c) < 0x20 or ord(c) == 0x7F for c in msg), msg)
        ctx.close()


if __name__ == "__main__":
    unittest.main()
