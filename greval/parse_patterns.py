"""The regular expressions and word lists greval.parse reads answers with.

greval/parse.py states the rules; this module holds the patterns those rules name, so the
rules and the logic that applies them stay readable. Every pattern is precompiled and none
can backtrack catastrophically (no nested unbounded quantifiers over overlapping classes).
"""

from __future__ import annotations

import re

# --- tags -------------------------------------------------------------------------

TAG = re.compile(r"<[ \t]*(/?)[ \t]*(think|answer)[ \t]*>", re.IGNORECASE)
FORMAT = re.compile(r"\s*<think>(.*?)</think>\s*<answer>(.*?)</answer>\s*", re.DOTALL)

# --- one number that may be a coordinate component -----------------------------------

_HEMI_WORD = r"(?i:north|south|east|west)"
COMPONENT = re.compile(
    r"""
    (?=[NSEW0-9+\-−－﹣])  # a cheap first-character test before the lookbehind
    (?<![0-9A-Za-z_.])
    (?:(?P<phemi>[NSEW])[ \t]?(?=[-+−－0-9]))?
    (?P<sign>[-+−－﹣])?
    (?P<deg>[0-9]{1,3}(?:\.[0-9]+|,[0-9]+(?=[ \t]?[°º˚]))?)
    (?:
        [ \t]{0,2}(?P<degmark>[°º˚]|deg(?:rees?|s)?(?![A-Za-z]))
        (?:
            [ \t]{0,2}(?P<min>[0-9]{1,2}(?:\.[0-9]+)?)[ \t]?(?:['′’´]|min(?:utes?|s)?(?![A-Za-z])|(?(phemi)(?=[ \t\n,;)\]}]|$)|(?!)))
            (?:
                [ \t]{0,2}(?P<sec>[0-9]{1,2}(?:\.[0-9]+)?)[ \t]?(?:\\?["″”]|''|′′|’’|sec(?:onds?|s)?(?![A-Za-z]))
            )?
        )?
    )?
    (?(phemi)|(?:[ \t]{0,2}(?P<hemi>[NSEW]|"""
    + _HEMI_WORD
    + r""")(?![0-9A-Za-z_]))?)
    (?![0-9A-Za-z_]|\.[0-9])
    """,
    re.VERBOSE,
)

# A unit right after a number means it is not a coordinate.
UNIT_AFTER = re.compile(
    r"""[ \t]*(?:
        %|percent|per[ \t]?cent|km|kilomet|kms\b|met(?:er|re)s?(?![A-Za-z])|m(?![A-Za-z²])|m²|mi(?![A-Za-z])|miles?
        |ft(?![A-Za-z])|feet|foot|yards?|nmi|knots?|[hH]ours?|hrs?(?![A-Za-z])|h(?![A-Za-z])
        |mins?(?![A-Za-z])|minutes|secs?(?![A-Za-z])|seconds|s(?![A-Za-z])|years?|yrs?|months?|days?|weeks?
        |kg|tons?|tonnes?|people|inhabitants|residents|million|billion|thousand|k(?![A-Za-z])
        |[°º˚]?[ \t]?[CF](?![A-Za-z])|am(?![A-Za-z])|pm(?![A-Za-z])|[ap]\.m|AD(?![A-Za-z])|BCE?|CE(?![A-Za-z])
        |st(?![A-Za-z])|nd(?![A-Za-z])|rd(?![A-Za-z])|th(?![A-Za-z])|x(?![A-Za-z])|times|stor(?:e?ys|ies)
        |floors?|sq(?![A-Za-z])|acres?|hectares?|ha(?![A-Za-z])|mm(?![A-Za-z])|cm(?![A-Za-z])|fps|mph|kph
        |lanes?|stars?|points?|pts|/10|/100|out[ \t]of
    )""",
    re.VERBOSE,
)


# The words right before a number that name what it is ("Latitude:", '"lng": "',
# "coordinates are about", "confidence:"). Matched on the REVERSED window that ends
# where the number starts, so the match is anchored (`.match`) and costs only the
# label's length instead of a scan of every start position.
def _rev_alternation(words: str) -> str:
    return "|".join(re.escape(w[::-1]) for w in sorted(words.split(), key=len, reverse=True))


# English plus the Spanish / Portuguese / Italian / German words models answer with
# when the prompt or the photo is in that language.
_LAT_WORDS = "lat latitude latitud latitudine breitengrad"
_LON_WORDS = "lon lng long longitude longitud longitudine längengrad laengengrad"
_KEY_SUFFIXES = "_deg _dd _decimal _degrees _value deg dd decimal degrees value"
_FILLERS = "is of are approx approximately about around roughly near nearly at value equals equal estimated est be would should close to 约 约为 大约 为 是"
_CONTEXT_WORDS = "coordinate coordinates coord coords gps location position latlng latlon lat_lon lat_lng answer guess point 坐标 經緯度 经纬度"
_NONCOORD_WORDS = (
    "confidence probability certainty score accuracy altitude elevation height radius error uncertainty"
    " population distance zoom temperature rating version year depth speed size price cost weight"
    " width length angle heading bearing time ratio 置信度 海拔"
)
_REV_LAT = rf"(?:s?(?:{_rev_alternation(_LAT_WORDS)}))"
_REV_LON = rf"(?:s?(?:{_rev_alternation(_LON_WORDS)}))"
LABEL_REV = re.compile(
    rf"""
    (?P<tail>[\W_]*(?:(?<![A-Za-z])(?:{_rev_alternation(_FILLERS)})[\W_]*){{0,3}})
    (?:
        (?<![A-Za-z])(?P<hdr_latlon>{_REV_LON}[ \t]*[/,&|][ \t]*{_REV_LAT})(?![0-9A-Za-z])
      | (?<![A-Za-z])(?P<hdr_lonlat>{_REV_LAT}[ \t]*[/,&|][ \t]*{_REV_LON})(?![0-9A-Za-z])
      | (?<![A-Za-z])(?:{_rev_alternation(_KEY_SUFFIXES)})?(?P<lat>{_rev_alternation(_LAT_WORDS)})(?![0-9A-Za-z])
      | (?<![A-Za-z])(?:{_rev_alternation(_KEY_SUFFIXES)})?(?P<lon>{_rev_alternation(_LON_WORDS)})(?![0-9A-Za-z])
      | (?P<cjk_n>纬北|緯北|度纬|度緯)
      | (?P<cjk_s>纬南|緯南)
      | (?P<cjk_e>经东|經東|度经|度經)
      | (?P<cjk_w>经西|經西)
      | (?<![A-Za-z])(?P<ctx>{_rev_alternation(_CONTEXT_WORDS)})(?![0-9A-Za-z])
      | (?<![A-Za-z])(?P<noncoord>{_rev_alternation(_NONCOORD_WORDS)})(?![0-9A-Za-z])
    )
    """,
    re.IGNORECASE | re.VERBOSE,
)
LABEL_WINDOW = 48
LABEL_KINDS = {
    "hdr_latlon": "latlon",
    "hdr_lonlat": "lonlat",
    "cjk_n": "lat",
    "cjk_s": "lat",
    "cjk_e": "lon",
    "cjk_w": "lon",
}
CJK_SIGNS = {"cjk_n": False, "cjk_s": True, "cjk_e": False, "cjk_w": True}  # True: negative

# "48.85 latitude, 2.35 longitude": the axis named after the number.
SUFFIX_LABEL = re.compile(
    r"[ \t]*(?:\*\*|__|\*|_)?[ \t]*\(?(?:(?P<lat>latitude|lat)|(?P<lon>longitude|long|lon|lng))(?![A-Za-z])(?![ \t]*[/,&|][ \t]*(?:lat|lon|lng|long))",
    re.IGNORECASE,
)

# What may stand between the two numbers of an unnamed pair.
PAIR_GAP = re.compile(
    r"""[ \t*_`"'\])}]*(?:(?P<punct>[,，;；/|、])|(?P<and>and|&))?[ \t*_`"'\[({]*""",
    re.VERBOSE,
)
PAIR_GAP_NEWLINE = re.compile(r"""[ \t*_`"',]*\n[ \t*_`"'\-]*""")
OPEN_BRACKET = re.compile(r"""[(\[{][ \t"'`]*\Z""")
CLOSE_BRACKET = re.compile(r"""[ \t"'`°]*[)\]}]""")
GEOJSON_POINT = re.compile(r"""["']type["'][ \t]*:[ \t]*["']Point["']""")

# A data refusal: {"latitude": null}, "lat": "unknown", latitude: N/A.
NULL_VALUE = re.compile(
    r"""(?<![0-9A-Za-z])lat(?:itude)?["']?[ \t]*[:=][ \t]*(?:null|none|nan|n/?a|unknown|["'](?:unknown|n/?a|none|null|nan|-*)["'])(?![A-Za-z])""",
    re.IGNORECASE,
)

NULL_HINTS = ("null", "none", "nan", "n/a", "na", "unknown", '""', "''", "-")

# --- commitment, alternatives, refusals ----------------------------------------------

COMMIT = re.compile(
    r"""(?:
        final[ \t]+(?:answer|coordinates?|guess|estimate|prediction|location|response|result|output|decision|choice)
      | (?:my|the)[ \t]+best[ \t]+(?:guess|estimate|bet)|best[ \t]+guess
      | (?:I'?ll|I[ \t]+will|I'?m[ \t]+going|I[ \t]+am[ \t]+going|let'?s)[ \t]+go[ \t]+with|going[ \t]+with
      | my[ \t]+(?:answer|guess|prediction|estimate|pick|choice)(?:[ \t]+(?:is|would[ \t]+be|will[ \t]+be))?
      | the[ \t]+answer[ \t]+is|answer[ \t]*[:：]
      | in[ \t]+conclusion|to[ \t]+conclude|conclusion[ \t]*[:：]|in[ \t]+summary|to[ \t]+summari[sz]e
      | settle[ \t]+on|commit(?:ting)?[ \t]+to|predicted[ \t]+(?:location|coordinates)|estimated[ \t]+(?:location|coordinates)
      | most[ \t]+likely[ \t]+(?:location|coordinates|answer|spot|place)
      | 最终答案|最终坐标|最终结论|答案[:：]|结论[:：]|综上
    )""",
    re.IGNORECASE | re.VERBOSE,
)

COMMIT_LOWER = re.compile(COMMIT.pattern.lower(), re.VERBOSE)

# Cheap `in` checks on the lower-cased region that must pass before COMMIT runs.
COMMIT_HINTS = (
    "final",
    "best",
    "go with",
    "going with",
    "my ",
    "answer",
    "conclu",
    "summar",
    "settl",
    "commit",
    "predicted",
    "estimated",
    "most likely",
    "最终",
    "答案",
    "结论",
    "综上",
)

ALTERNATIVE = re.compile(
    r"""(?<![A-Za-z])(?:
        alternative(?:ly|s)?|another[ \t]+(?:possibility|option|candidate|guess|choice)|other[ \t]+(?:possibilit|option|candidat)
      | second(?:ary)?[ \t]+(?:guess|choice|candidate|option|possibility)|could[ \t]+also[ \t]+be|might[ \t]+also[ \t]+be
      | may[ \t]+also[ \t]+be|less[ \t]+likely|unlikely|runner[- ]up|backup|rather[ \t]+than|instead[ \t]+of
      | rul(?:e|ed|ing)[ \t]+out|ruled|excluded?|not[ \t]+(?:the[ \t]+)?(?:answer|location|it)|or
      | (?<=[,;—–])[ \t]*not(?=[ \t]+(?!(?:far|too|very|so|much|more|less|only|just|quite|exactly|that|sure|certain)(?![A-Za-z])))
      | 或者|也可能|备选
    )(?![A-Za-z])""",
    re.IGNORECASE | re.VERBOSE,
)
SENTENCE_END = re.compile(r"[.!?。！？](?:\s|$)|\n")
RANKED_ITEM = re.compile(
    r"""[ \t>*_\-]*(?:(?:option|candidate|guess|choice|possibility|alternative)[ \t]*)?\#?[ \t]*(?:[2-9]|1[0-9])[.):：]""",
    re.IGNORECASE,
)

REFUSAL_RE = re.compile(
    r"""(?<![A-Za-z])(?:
        can[ \t]?not|can'?t|can’t|couldn'?t|couldn’t|unable|not[ \t]+(?:be[ \t]+)?able|impossible|not[ \t]+possible
      | don'?t[ \t]+know|don’t[ \t]+know|do[ \t]+not[ \t]+know|no[ \t]+way[ \t]+to|sorry|apologi[sz]e|refuse|decline
      | (?:don'?t|don’t|do[ \t]+not)[ \t]+think[ \t]+(?:I|we)[ \t]+can
      | not[ \t]+(?:confident|sure)[ \t]+enough|(?:don'?t|don’t|do[ \t]+not)[ \t]+feel[ \t]+confident
      | won'?t[ \t]+be[ \t]+able|unknown|undetermin\w*|indeterminate|not[ \t]+determinable|insufficient
      | not[ \t]+enough[ \t]+(?:information|detail|details|clues|context|visual)|no[ \t]+(?:clear|identifiable|distinctive|definitive|discernible|recognizable|obvious)
      | n/a|null|none|nan|no[ \t]+answer|privacy
      | 无法|不能确定|不确定|抱歉|未知
    )(?![A-Za-z])""",
    re.IGNORECASE | re.VERBOSE,
)

# A caveat, not a refusal (parse.py rule 6): a refusal phrase whose own clause names what
# cannot be certain ("I cannot be 100% certain", "unable to confirm this", "can't say for
# sure", "cannot be more precise") or how precise the answer is ("pinpointing the exact spot is practically
# impossible", "can't narrow it down to a street").
CERTAINTY_WORDS = re.compile(
    r"""(?<![A-Za-z])(?:
        certain(?:ty|ly)?|sure|definitive(?:ly)?|definite(?:ly)?|100[ \t]?%|100[ \t]?percent
      | confirm\w*|guarantee\w*|verif(?:y|ied)|确定
      | (?:any[ \t]+)?more[ \t]+(?:precise(?:ly)?|specific(?:ally)?|accurate(?:ly)?|exact(?:ly)?|detailed)|further
    )(?![A-Za-z])""",
    re.IGNORECASE | re.VERBOSE,
)
PRECISION_WORDS = re.compile(
    r"""(?<![A-Za-z])(?:
        exact(?:ly)?|precise(?:ly)?|precision|pinpoint\w*|accurate(?:ly)?|accuracy|more[ \t]+specific
      | narrow(?:ed)?[ \t]+(?:it[ \t]+)?down|street|精确|准确
    )(?![A-Za-z])""",
    re.IGNORECASE | re.VERBOSE,
)
# The marker introduces what follows it: "Final answer: ...", "My best guess is ...".
INTRODUCES = re.compile(r"""[ \t*_`"']*(?:[:：=]|is|would[ \t]+be|will[ \t]+be)""", re.IGNORECASE)
CLAUSE_END = re.compile(r"[,;:.!?\n。，；：！？]")

# A refusal written as a value right after the final-answer marker, ending its clause:
# "Final coordinates: N/A — ...", "Final answer: Unknown. (Earlier I considered ...)".
DATA_REFUSAL_AFTER_MARKER = re.compile(
    r"""[ \t\n:：*_`"'=>#-]*(?:n/?a|unknown|none|null|nan|undetermined|indeterminate|not[ \t]+determinable
      | can[ \t]?not[ \t]+be[ \t]+determined|no[ \t]+answer|未知|无法确定)[ \t*_`"']*(?:[.;,(\n—–-]|$)""",
    re.IGNORECASE | re.VERBOSE,
)

MINUS = frozenset("-−－﹣")
