#!/usr/bin/env python3
"""Prints the two Unicode tables of cs_normalize.c (between the
"generated" markers there) from Python's unicodedata.

  fold_tab     simple case folding (str.casefold when it gives one
               character) for U+00B5, U+00C0..U+052F (Latin-1, Latin
               Extended-A/B, IPA, Greek and Coptic, Cyrillic and its
               supplement), U+1E00..U+1EFF and the Kelvin, Angstrom and
               Ohm signs. Multi-character folds are handled in C (ß, ẞ, İ)
               or left alone.
  compose_tab  base letter + one combining mark (U+0300..U+036F) whose NFC
               form is one character, for the Latin, Greek and Cyrillic
               base letters, keeping only results inside the folded
               ranges, so that folding and composing commute. I + U+0307
               is left out: cs_normalize folds İ to a plain i.

Run: python3 cachesvc/gen_unicode_tables.py, paste the output over the
tables. The checks at the end fail loudly if the two tables disagree.
"""
import unicodedata

FOLD_RANGES = [(0xB5, 0xB5), (0xC0, 0x52F), (0x1E00, 0x1EFF),
               (0x2126, 0x2126), (0x212A, 0x212B)]


def in_folded_ranges(c):
    return (0xC0 <= c <= 0x24F or 0x370 <= c <= 0x3FF
            or 0x400 <= c <= 0x52F or 0x1E00 <= c <= 0x1EFF)


def fold_pairs():
    pairs = []
    for lo, hi in FOLD_RANGES:
        for c in range(lo, hi + 1):
            f = chr(c).casefold()
            if len(f) == 1 and f != chr(c):
                pairs.append((c, ord(f)))
    return pairs


def compose_pairs():
    bases = [chr(c) for c in range(ord('a'), ord('z') + 1)]
    bases += [chr(c) for c in range(ord('A'), ord('Z') + 1)]
    bases += [chr(c) for c in range(0x3B1, 0x3CA)]
    bases += [chr(c) for c in range(0x391, 0x3AA) if c != 0x3A2]
    bases += [chr(c) for c in range(0x410, 0x450)]
    bases += ['\u0456', '\u0406', '\u0474', '\u0475']
    rows = []
    for b in bases:
        for m in range(0x300, 0x370):
            c = unicodedata.normalize('NFC', b + chr(m))
            if len(c) == 1 and in_folded_ranges(ord(c)):
                if b == 'I' and m == 0x307:
                    continue
                rows.append(((ord(b) << 16) | m, ord(c)))
    return sorted(rows)


def emit(name, ctype, rows, fmt):
    print('static const %s %s[] = {' % (ctype, name))
    line = '    '
    for r in rows:
        e = fmt % r + ', '
        if len(line) + len(e) > 79:
            print(line.rstrip())
            line = '    '
        line += e
    print(line.rstrip().rstrip(','))
    print('};')


def main():
    fold = dict(fold_pairs())
    comp = dict(compose_pairs())

    def f(c):
        return c + 32 if 0x41 <= c <= 0x5A else fold.get(c, c)

    for k, c in comp.items():
        b, m = k >> 16, k & 0xFFFF
        want = comp.get((f(b) << 16) | m)
        assert want is not None and f(c) == want and f(want) == want, hex(k)
    for a, t in fold.items():
        assert f(t) == t, hex(a)
    emit('fold_tab', 'cs_cp_pair_t', sorted(fold.items()),
         '{0x%04X, 0x%04X}')
    emit('compose_tab', 'cs_cp_pair_t', sorted(comp.items()),
         '{0x%08X, 0x%04X}')


if __name__ == '__main__':
    main()
