#!/usr/bin/python3
"""Generates tests/data/cache_eval.jsonl, the labelled set for ark-cache-eval.

Each output line is one pair of user requests:

  {"a": stored request, "b": new request, "same": bool,
   "category": ..., "lang": "en" | "zh"}

"same" answers: may b be served with the answer stored for a?

Positives
  near_duplicate     b is a with typos, punctuation, case, white space,
                     filler/politeness words, full-width characters,
                     markdown decoration or number formatting changed
  paraphrase         b asks the same thing in other words (hand written)
Negatives (hard)
  entity_swap        a named or salient thing replaced (France/Spain,
                     北京/上海, Iran/Iraq, 山西/陕西, dogs/cats)
  number_change      a number changed (3 vs 5, 10% vs 20%, 三 vs 四)
  negation           a negation added or removed (not, without, 不, 没有)
  direction          the direction of a conversion/translation/move swapped
  language_change    the programming or natural language asked for changed,
                     or the same question asked in the other language
  format_change      the output format asked for changed (JSON/YAML,
                     table/list, 表格/列表)
  template_document  the same instruction over a different pasted document
                     (another document, or the same one with a figure
                     changed, a sentence dropped, one operator changed in
                     code); 300-1500 characters each
  unrelated          two unrelated requests (easy negatives)

The output is deterministic: one seeded generator, fixed iteration order.
Regenerate with:

  /usr/bin/python3 tests/data/gen_cache_eval.py > tests/data/cache_eval.jsonl

and print the composition table of docs/cache-evaluation.md with --stats.
"""

import json
import random
import re
import sys

SEED = 20240611
rng = random.Random(SEED)

# --------------------------------------------------------------------------
# Base requests (used for near-duplicates and unrelated pairs).
# Kind "q" = a question, "i" = an instruction (imperative).
# --------------------------------------------------------------------------

EN_Q = [
    "What is the capital of Australia?",
    "How do I reverse a list in Python?",
    "What is the difference between a list and a tuple in Python?",
    "How do I undo the last commit in git?",
    "What does the HTTP status code 503 mean?",
    "How many ounces are in a cup?",
    "Why is the sky blue?",
    "What is a closure in JavaScript?",
    "How do I center a div in CSS?",
    "What is the time complexity of quicksort?",
    "How do I check which process is using port 8080 on Linux?",
    "What is the difference between TCP and UDP?",
    "How do I create a virtual environment in Python?",
    "What are the symptoms of vitamin D deficiency?",
    "How long should I boil an egg for a runny yolk?",
    "Who wrote Pride and Prejudice?",
    "What is the boiling point of water in Fahrenheit?",
    "How does compound interest work?",
    "What is the difference between affect and effect?",
    "How do I remove a file from git without deleting it locally?",
    "What is a foreign key in SQL?",
    "How do I convert a string to a date in Java?",
    "What is the meaning of the idiom 'break the ice'?",
    "How do I set an environment variable in Windows?",
    "What is Docker and why should I use it?",
    "How does HTTPS keep my data secure?",
    "What is the largest ocean on Earth?",
    "How do I stop my cat from scratching the sofa?",
    "What is the Pythagorean theorem?",
    "How can I improve my credit score?",
    "What is the difference between RAM and storage?",
    "How do I find duplicate rows in a SQL table?",
    "What is the best way to learn touch typing?",
    "How do I make a sourdough starter?",
    "What is a REST API?",
    "How do I resolve a merge conflict in git?",
    "Why does my React component render twice?",
    "What is the difference between let, const and var in JavaScript?",
    "How do I sort a dictionary by value in Python?",
    "What does async mean in Python?",
    "How many bones are in the human body?",
    "What is the speed of sound in air?",
    "How do I write a good cover letter?",
    "What is the difference between a virus and a bacterium?",
    "How do I calculate the area of a circle?",
    "What is Big O notation?",
    "How do I kill a process in Linux?",
    "What is the difference between git merge and git rebase?",
    "How do I read a CSV file with pandas?",
    "What is a mutex?",
    "Is it better to rent or buy a house?",
    "How do I get rid of fruit flies in the kitchen?",
    "What is photosynthesis?",
    "How do I change my default shell to zsh?",
    "What is the difference between machine learning and deep learning?",
    "How does a hash table work?",
    "What is the tallest building in the world?",
    "How do I make cold brew coffee at home?",
    "What is the difference between an SSD and an HDD?",
    "How can I tell if an egg is still fresh?",
    "What does idempotent mean for REST APIs?",
    "Why do cats purr?",
    "How do I add a column to an existing table in PostgreSQL?",
    "What's the difference between == and === in JavaScript?",
    "How do I recover a deleted branch in git?",
    "What is Kubernetes used for?",
    "What is the main cause of inflation?",
    "How do I fix 'Permission denied (publickey)' when pushing to GitHub?",
    "Why is my Wi-Fi so slow at night?",
    "What is the difference between weather and climate?",
    "How do vaccines work?",
    "What is the healthiest way to cook broccoli?",
    "How do I write a regular expression for an email address?",
    "What is a segmentation fault?",
    "How do I install packages from a requirements.txt file?",
]

EN_I = [
    "Explain recursion with a simple example.",
    "Write a haiku about the ocean.",
    "Explain the difference between stocks and bonds.",
    "Write a Python function that checks if a string is a palindrome.",
    "Summarize the causes of World War I.",
    "Give me a recipe for banana bread.",
    "Write a SQL query to find the second highest salary.",
    "Explain how a neural network learns.",
    "Suggest a name for my bakery.",
    "Write a short bedtime story about a dragon who is afraid of the dark.",
    "Explain the CAP theorem.",
    "Write a polite email asking my landlord to fix the heating.",
    "List the planets of the solar system in order.",
    "Explain what a Docker volume is.",
    "Write a bash script that backs up my home directory.",
    "Explain the rules of chess for a beginner.",
    "Recommend some books about building habits.",
    "Write a limerick about a programmer.",
    "Explain how DNS works.",
    "Describe the water cycle.",
    "Give me a workout plan for beginners.",
    "Write a regex that matches a US phone number.",
    "Explain the difference between a class and an object.",
    "Write a thank-you note to my team after a product launch.",
    "Explain what an API gateway does.",
    "Create a packing list for a weekend camping trip.",
    "Write a JavaScript function to debounce another function.",
    "Explain the theory of relativity in simple terms.",
    "Write a LinkedIn post announcing my new job.",
    "Explain how garbage collection works in Java.",
    "Give me ideas for a team building activity.",
    "Write a cover letter for a junior data analyst position.",
    "Explain the difference between HTTP and HTTPS.",
    "Describe how a bill becomes a law in the United States.",
    "Write a product description for a stainless steel water bottle.",
    "Explain what a p-value is.",
    "Write unit tests for a function that adds two numbers in Python.",
    "Explain what the virtual DOM is in React.",
    "Write a short speech for my sister's wedding.",
    "Give me a meal plan for a week of vegetarian dinners.",
    "Explain the Monty Hall problem.",
    "Write a Dockerfile for a Node.js application.",
    "Explain how public key cryptography works.",
    "Explain the difference between supervised and unsupervised learning.",
    "Write an apology email to a customer for a late delivery.",
    "Explain what a memory leak is.",
    "Write a Python script that renames all files in a folder to lowercase.",
    "Summarize the plot of The Great Gatsby.",
    "Explain how to calculate a tip.",
    "Write a function that flattens a nested list in Python.",
]

ZH_Q = [
    "澳大利亚的首都是哪里？",
    "Python中列表和元组有什么区别？",
    "怎么撤销git的最后一次提交？",
    "HTTP状态码503是什么意思？",
    "为什么天空是蓝色的？",
    "JavaScript中的闭包是什么？",
    "CSS怎么让div水平垂直居中？",
    "快速排序的时间复杂度是多少？",
    "Linux下怎么查看哪个进程占用了8080端口？",
    "TCP和UDP有什么区别？",
    "怎么创建Python虚拟环境？",
    "缺乏维生素D有哪些症状？",
    "鸡蛋要煮几分钟才是溏心的？",
    "《红楼梦》的作者是谁？",
    "复利是怎么计算的？",
    "数据库里的外键是什么？",
    "怎么在Windows上设置环境变量？",
    "Docker是什么，为什么要用它？",
    "HTTPS是如何保证数据安全的？",
    "世界上最大的海洋是哪个？",
    "怎么防止猫抓沙发？",
    "如何提高个人征信分数？",
    "内存和硬盘有什么区别？",
    "SQL怎么查找重复的数据？",
    "酸面包的酵头怎么养？",
    "什么是RESTful API？",
    "git合并冲突怎么解决？",
    "React组件为什么会渲染两次？",
    "Python怎么按值对字典排序？",
    "人体有多少块骨头？",
    "病毒和细菌有什么区别？",
    "圆的面积怎么算？",
    "什么是大O表示法？",
    "git merge和git rebase有什么区别？",
    "怎么用pandas读取CSV文件？",
    "租房好还是买房好？",
    "厨房里的果蝇怎么消灭？",
    "什么是光合作用？",
    "机器学习和深度学习有什么区别？",
    "哈希表的原理是什么？",
    "世界上最高的建筑是哪座？",
    "在家怎么做冷萃咖啡？",
    "固态硬盘和机械硬盘哪个好？",
    "怎么判断鸡蛋是否新鲜？",
    "猫为什么会发出呼噜声？",
    "PostgreSQL怎么给已有的表加一列？",
    "Kubernetes是用来做什么的？",
    "通货膨胀的主要原因是什么？",
    "推送到GitHub时提示Permission denied (publickey)怎么办？",
    "为什么晚上家里的WiFi特别慢？",
    "疫苗是怎么起作用的？",
    "西兰花怎么做最健康？",
    "什么是段错误？",
    "高铁上可以带充电宝吗？",
    "感冒了吃什么好得快？",
    "个人所得税怎么计算？",
    "端午节为什么要吃粽子？",
    "长城有多长？",
    "怎么判断西瓜熟没熟？",
    "北京有哪些适合带孩子去的地方？",
]

ZH_I = [
    "用简单的例子解释递归。",
    "写一首关于大海的五言绝句。",
    "解释股票和债券的区别。",
    "用Python写一个判断回文字符串的函数。",
    "总结第一次世界大战爆发的原因。",
    "给我一个香蕉蛋糕的做法。",
    "写一个SQL查询，找出工资第二高的员工。",
    "解释神经网络是如何学习的。",
    "给我的面包店起个名字。",
    "写一个关于怕黑的小龙的睡前故事。",
    "解释CAP定理。",
    "写一封邮件请房东修暖气。",
    "按顺序列出太阳系的行星。",
    "写一个备份home目录的bash脚本。",
    "给初学者讲讲国际象棋的规则。",
    "推荐几本关于养成习惯的书。",
    "解释DNS的工作原理。",
    "给我制定一个新手健身计划。",
    "写一个匹配中国大陆手机号的正则表达式。",
    "解释类和对象的区别。",
    "写一段产品发布后感谢团队的话。",
    "给周末露营列一个装备清单。",
    "用JavaScript写一个防抖函数。",
    "用通俗的语言解释相对论。",
    "写一条朋友圈宣布我换工作了。",
    "解释Java的垃圾回收机制。",
    "写一份初级数据分析师的求职信。",
    "介绍春节的传统习俗。",
    "写一段妹妹婚礼上的致辞。",
    "给我安排一周的素食晚餐。",
    "解释蒙提霍尔问题。",
    "为Node.js应用写一个Dockerfile。",
    "解释公钥加密的原理。",
    "写一封因为发货延迟向客户道歉的邮件。",
    "解释什么是内存泄漏。",
    "总结《西游记》的主要情节。",
    "写一份年终总结的提纲。",
    "介绍杭州西湖的景点。",
    "给孩子讲讲为什么会下雨。",
    "写一张请假条，理由是家里有事。",
]

# --------------------------------------------------------------------------
# Perturbations that keep the meaning (near-duplicates).
# --------------------------------------------------------------------------

FW_OFFSET = 0xFEE0  # ASCII '!'..'~' -> U+FF01..U+FF5E


def to_fullwidth(s, letters=True, digits=True, punct=True):
    out = []
    for ch in s:
        o = ord(ch)
        if ch == " ":
            out.append(ch)
        elif 0x21 <= o <= 0x7E and (
            (ch.isalpha() and letters)
            or (ch.isdigit() and digits)
            or (not ch.isalnum() and punct)
        ):
            out.append(chr(o + FW_OFFSET))
        else:
            out.append(ch)
    return "".join(out)


def first_lower(s):
    """Lower-cases the first letter unless the first word is 'I' or looks
    like a name/identifier (has a capital after its first letter)."""
    m = re.match(r"([A-Za-z][\w'-]*)", s)
    if not m:
        return s
    w = m.group(1)
    if w == "I" or any(c.isupper() for c in w[1:]):
        return s
    return s[0].lower() + s[1:]


KEYBOARD_NEIGHBOURS = {
    "a": "sq", "b": "vn", "c": "xv", "d": "sf", "e": "wr", "f": "dg",
    "g": "fh", "h": "gj", "i": "uo", "j": "hk", "k": "jl", "l": "k",
    "m": "n", "n": "bm", "o": "ip", "p": "o", "r": "et", "s": "ad",
    "t": "ry", "u": "yi", "v": "cb", "w": "qe", "y": "tu",
}


def en_typo(s):
    """One realistic typo in a lower-case word of 5+ letters (never in a
    number, an identifier, an acronym or a capitalised name)."""
    words = list(re.finditer(r"[A-Za-z]+", s))
    cands = [m for m in words
             if len(m.group()) >= 5 and m.group().islower()]
    if not cands:
        return None
    m = rng.choice(cands)
    w = m.group()
    kind = rng.choice(["swap", "drop", "double", "near"])
    i = rng.randrange(1, len(w) - 1)
    if kind == "swap":
        if w[i] == w[i + 1]:
            return None
        t = w[:i] + w[i + 1] + w[i] + w[i + 2:]
    elif kind == "drop":
        t = w[:i] + w[i + 1:]
    elif kind == "double":
        t = w[:i] + w[i] + w[i:]
    else:
        n = KEYBOARD_NEIGHBOURS.get(w[i])
        if not n:
            return None
        t = w[:i] + rng.choice(n) + w[i + 1:]
    return s[:m.start()] + t + s[m.end():]


def en_punct(s):
    ops = [
        lambda x: x.rstrip(".?!"),
        lambda x: x.rstrip(".?!") + "??",
        lambda x: x.rstrip(".?!") + "?!",
        lambda x: x.replace("?", "？"),
        lambda x: x.rstrip(".") + "!",
        lambda x: x.replace(",", ""),
        lambda x: x.rstrip(".?!") + "...",
        lambda x: x.replace("'", "\u2019"),
    ]
    for _ in range(6):
        t = rng.choice(ops)(s)
        if t != s:
            return t
    return None


def en_case(s):
    ops = [
        lambda x: x.lower(),
        lambda x: x.lower(),
        first_lower,
        lambda x: x.upper(),
    ]
    t = rng.choice(ops)(s)
    return t if t != s else None


def en_space(s):
    ops = [
        lambda x: "  " + x + "  ",
        lambda x: x + "\n",
        lambda x: x.replace(" ", "  ", 2),
        lambda x: re.sub(r" (\w+)$", r"\n\1", x) if " " in x else x,
        lambda x: "\t" + x,
        lambda x: x.replace(" ", "   ", 1) + " ",
    ]
    t = rng.choice(ops)(s)
    return t if t != s else None


EN_Q_PREFIX = ["Hey, ", "Hi! ", "Quick question: ", "Hello, ",
               "I was wondering, ", "Question: "]
EN_SUFFIX = [" Thanks!", " Thank you.", " Thanks in advance.", " Thx",
             " Please."]
EN_I_PREFIX = ["Please ", "Can you ", "Could you please ", "Quickly ",
               "Please quickly ", "Hey, can you ", "Pls "]


def en_filler(s, kind):
    if kind == "q":
        if rng.random() < 0.6:
            p = rng.choice(EN_Q_PREFIX)
            body = first_lower(s) if p.endswith(", ") else s
            return p + body
        return s + rng.choice(EN_SUFFIX)
    r = rng.random()
    if r < 0.6:
        p = rng.choice(EN_I_PREFIX)
        t = p + first_lower(s)
        if p.strip().lower().startswith(("can", "could", "hey, can")):
            t = t.rstrip(".") + "?"
        return t
    if r < 0.8:
        return s.rstrip(".") + rng.choice([", please.", " please",
                                           " quickly.", ", thanks!"])
    return s + rng.choice(EN_SUFFIX)


def en_reorder(s, kind):
    """Two requests with the same filler words in different places."""
    if kind != "i":
        return None
    body = first_lower(s).rstrip(".")
    forms = [
        ("Please quickly " + body + ".", "Quickly " + body + ", please."),
        ("Please " + body + " quickly.", "Quickly " + body + ", please."),
        ("Can you please " + body + "?", "Please, can you " + body + "?"),
        ("Hey, please " + body + ".", "Please " + body + ", hey."),
    ]
    return rng.choice(forms)


def markdown(s):
    ops = [
        lambda x: "**" + x + "**",
        lambda x: "# " + x,
        lambda x: "> " + x,
        lambda x: "- " + x,
        lambda x: "*" + x + "*",
        lambda x: x + "\n\n---",
    ]
    # Back-quote identifiers, the way people paste them in chat.
    idents = re.findall(r"\b[\w.]*[a-z][A-Z_.][\w.]*\b|\b\w+\.\w+\b", s)
    if idents:
        ident = idents[0]
        ops.append(lambda x: x.replace(ident, "`" + ident + "`", 1))
        ops.append(lambda x: x.replace(ident, "`" + ident + "`", 1))
    t = rng.choice(ops)(s)
    return t if t != s else None


EN_OPS = ["typo", "typo", "punct", "case", "space", "filler", "filler",
          "markdown", "fullwidth"]


def en_apply(s, kind, op):
    if op == "typo":
        return en_typo(s)
    if op == "punct":
        return en_punct(s)
    if op == "case":
        return en_case(s)
    if op == "space":
        return en_space(s)
    if op == "filler":
        return en_filler(s, kind)
    if op == "markdown":
        return markdown(s)
    if op == "fullwidth":
        t = to_fullwidth(s, letters=False, digits=False)
        return t if t != s else None
    raise ValueError(op)


# Pinyin-input typos: characters that share a reading and are commonly
# confused. The mapping is applied to one occurrence.
ZH_HOMOPHONES = {
    "的": "地", "地": "的", "得": "的", "在": "再", "再": "在", "做": "作",
    "作": "做", "哪": "那", "那": "哪", "以": "已", "已": "以", "象": "像",
    "像": "象", "账": "帐", "须": "需", "需": "须", "即": "既", "既": "即",
}


def zh_typo(s):
    idx = [i for i, ch in enumerate(s) if ch in ZH_HOMOPHONES]
    if idx:
        i = rng.choice(idx)
        return s[:i] + ZH_HOMOPHONES[s[i]] + s[i + 1:]
    # Dropping a particle is the other common slip.
    for p in ("了", "的"):
        if p in s:
            i = s.index(p)
            return s[:i] + s[i + 1:]
    return None


def zh_punct(s):
    ops = [
        lambda x: x.replace("？", "?"),
        lambda x: x.rstrip("？。！"),
        lambda x: x.replace("。", "."),
        lambda x: x.rstrip("？。") + "？？",
        lambda x: x.rstrip("。") + "！",
        lambda x: x.replace("，", ","),
        lambda x: x.replace("，", " "),
    ]
    for _ in range(6):
        t = rng.choice(ops)(s)
        if t != s:
            return t
    return None


def zh_space(s):
    """Spaces between CJK and Latin runs (or none), trailing spaces."""
    spaced = re.sub(r"(?<=[\u4e00-\u9fff])(?=[A-Za-z0-9])|"
                    r"(?<=[A-Za-z0-9])(?=[\u4e00-\u9fff])", " ", s)
    ops = [lambda x: x + "  ", lambda x: " " + x, lambda x: x + "\n"]
    if spaced != s:
        ops += [lambda x: spaced, lambda x: spaced]
    t = rng.choice(ops)(s)
    return t if t != s else None


ZH_Q_PREFIX = ["请问", "请问一下，", "你好，", "您好，请问", "问一下，",
               "想问下，"]
ZH_I_PREFIX = ["请", "帮我", "麻烦", "请帮我", "你好，请", "能不能帮我"]
ZH_SUFFIX = ["谢谢", "，谢谢！", "，谢谢。", "，多谢", "～"]
ZH_YIXIA_VERBS = ["解释", "介绍", "总结", "翻译", "检查", "分析", "优化",
                  "说明", "比较", "看看"]


def zh_filler(s, kind):
    if kind == "q":
        if rng.random() < 0.65:
            return rng.choice(ZH_Q_PREFIX) + s
        if s.endswith("？"):
            return s[:-1] + rng.choice(["呢？", "啊？", "？谢谢"])
        return s + rng.choice(ZH_SUFFIX)
    if rng.random() < 0.7:
        p = rng.choice(ZH_I_PREFIX)
        if s.startswith(("给我", "帮我")):
            p = rng.choice(["请", "麻烦", "你好，请"])
        if p.endswith("能不能帮我"):
            return p + s.rstrip("。") + "？"
        return p + s
    return s.rstrip("。") + rng.choice(ZH_SUFFIX)


def zh_yixia(s, kind):
    for v in ZH_YIXIA_VERBS:
        i = s.find(v)
        if i >= 0 and not s[i + len(v):].startswith("一下"):
            return s[:i + len(v)] + "一下" + s[i + len(v):]
    return None


ZH_OPS = ["typo", "punct", "space", "filler", "filler", "yixia",
          "fullwidth", "markdown"]


def zh_apply(s, kind, op):
    if op == "typo":
        return zh_typo(s)
    if op == "punct":
        return zh_punct(s)
    if op == "space":
        return zh_space(s)
    if op == "filler":
        return zh_filler(s, kind)
    if op == "yixia":
        return zh_yixia(s, kind)
    if op == "fullwidth":
        # Chinese IMEs in full-width mode turn Latin letters, digits and
        # ASCII punctuation into their full-width forms.
        t = to_fullwidth(s)
        return t if t != s else None
    if op == "markdown":
        return markdown(s)
    raise ValueError(op)


# Order in which perturbations are applied: the words first (a typo, the
# case), then what is added around them (filler words, punctuation, white
# space), then full-width input, then markdown decoration around it all,
# the way a real request is typed and then pasted.
OP_ORDER = ["typo", "case", "yixia", "filler", "punct", "space", "fullwidth",
            "markdown"]


def perturb(s, kind, lang, nops):
    apply = en_apply if lang == "en" else zh_apply
    ops = EN_OPS if lang == "en" else ZH_OPS
    chosen = []
    for _ in range(20):
        op = rng.choice(ops)
        if op not in chosen:
            chosen.append(op)
        if len(chosen) == nops:
            break
    t = s
    for op in sorted(chosen, key=OP_ORDER.index):
        r = apply(t, kind, op)
        if r is not None:
            t = r
    return t if t != s else None


# Number formatting differences that do not change the number.
NUMBER_FORMAT_DUPS = [
    ("Give me 3 ideas for a birthday party.",
     "Give me three ideas for a birthday party."),
    ("What is 15% of 80?", "What is 15 percent of 80?"),
    ("Convert 1,000 meters to feet.", "Convert 1000 meters to feet."),
    ("What is 2+2?", "What is 2 + 2?"),
    ("Write a 500-word essay about climate change.",
     "Write a 500 word essay about climate change."),
    ("List 5 tips for better sleep.", "List five tips for better sleep."),
    ("How much is 12 x 12?", "How much is 12*12?"),
]
NUMBER_FORMAT_DUPS_ZH = [
    ("给我推荐3本关于历史的书。", "给我推荐三本关于历史的书。"),
    ("100米等于多少英尺？", "一百米等于多少英尺？"),
    ("1000元打8折是多少钱？", "1000元打八折是多少钱？"),
    ("2的10次方是多少？", "2的十次方是多少？"),
    ("列出5个提高效率的方法。", "列出五个提高效率的方法。"),
    ("写一篇500字的作文，题目是我的妈妈。",
     "写一篇五百字的作文，题目是我的妈妈。"),
    ("3乘以7等于多少？", "3×7等于多少？"),
]

# --------------------------------------------------------------------------
# Paraphrases (same question, other words). Hand written.
# --------------------------------------------------------------------------

EN_PARAPHRASES = [
    ("How do I reverse a list in Python?",
     "What's the way to flip the order of a Python list?"),
    ("What is the capital of Australia?", "Which city is Australia's capital?"),
    ("How can I undo the last git commit?",
     "What's the command to revert my most recent commit in git?"),
    ("Explain what a closure is in JavaScript.",
     "What does closure mean in JavaScript?"),
    ("How many ounces are in a pound?", "A pound is how many ounces?"),
    ("Give me tips to fall asleep faster.",
     "How can I get to sleep more quickly at night?"),
    ("What's the difference between TCP and UDP?", "How do TCP and UDP differ?"),
    ("How do I center a div horizontally and vertically with CSS?",
     "What CSS puts a div in the middle of the page both horizontally and "
     "vertically?"),
    ("Who painted the Mona Lisa?", "The Mona Lisa was painted by whom?"),
    ("How do I remove duplicates from a list in Python?",
     "What's the easiest way to dedupe a Python list?"),
    ("What does HTTP status 404 mean?", "Meaning of an HTTP 404 response?"),
    ("How long should I boil an egg for a soft yolk?",
     "For a runny yolk, how many minutes do I boil an egg?"),
    ("What is the boiling point of water at sea level?",
     "At sea level, at what temperature does water boil?"),
    ("How do I check my Python version?",
     "Which command shows the installed Python version?"),
    ("Write a haiku about autumn.", "Compose a haiku on the theme of fall."),
    ("What causes the seasons on Earth?", "Why does Earth have seasons?"),
    ("How do I list all files in a directory in Linux, including hidden ones?",
     "Linux command to show every file in a folder, hidden files too?"),
    ("How do I convert a string to an integer in JavaScript?",
     "In JavaScript, how can I turn a string into an int?"),
    ("Explain the difference between a process and a thread.",
     "How is a thread different from a process?"),
    ("What is the speed of light?", "How fast does light travel?"),
    ("How do I delete a local branch in git?",
     "What's the git command to remove a branch on my machine?"),
    ("Summarize the plot of Hamlet.",
     "Give me a short summary of the story of Hamlet."),
    ("What year did World War II end?", "When did the Second World War end?"),
    ("How can I make my resume stand out?",
     "Tips for making my CV more impressive to recruiters?"),
    ("What is the time complexity of binary search?",
     "What's the big-O of binary search?"),
    ("How do I exit vim?", "How do I quit the vim editor?"),
    ("Why is the sky blue?", "What makes the sky look blue?"),
    ("What is a good way to learn Spanish quickly?",
     "How can I pick up Spanish fast?"),
    ("What is the largest planet in the solar system?",
     "Which planet in our solar system is the biggest?"),
    ("How do I merge two dictionaries in Python?",
     "What's the way to combine two dicts into one in Python?"),
    ("Write a polite email declining a meeting invitation.",
     "Draft a courteous email turning down an invite to a meeting."),
    ("What are the symptoms of dehydration?",
     "How can I tell if I'm dehydrated?"),
    ("How many continents are there?",
     "What's the number of continents on Earth?"),
    ("What does 'ephemeral' mean?", "Define the word ephemeral."),
    ("How do I find the length of a string in Java?",
     "In Java, how do you get a string's length?"),
    ("How do I make a GET request in Python?",
     "How do I send an HTTP GET with Python?"),
    ("What is inflation?", "Explain what inflation means in economics."),
    ("Who was the first person to walk on the moon?",
     "Which astronaut first set foot on the Moon?"),
    ("How do I sort an array of numbers in JavaScript?",
     "What's the right way to numerically sort a JS array?"),
    ("What's a good name for a golden retriever puppy?",
     "Suggest a name for my new golden retriever puppy."),
]

ZH_PARAPHRASES = [
    ("怎么用Python反转一个列表？", "Python里如何把列表倒过来？"),
    ("澳大利亚的首都是哪里？", "哪座城市是澳大利亚的首都？"),
    ("如何撤销最近一次git提交？", "git怎么回退上一次commit？"),
    ("什么是闭包？", "闭包这个概念是什么意思？"),
    ("怎样才能快速入睡？", "有什么办法让我晚上更快睡着？"),
    ("TCP和UDP有什么区别？", "TCP跟UDP的不同之处在哪？"),
    ("蒙娜丽莎是谁画的？", "《蒙娜丽莎》的作者是谁？"),
    ("水在海平面的沸点是多少度？", "海平面上水多少度会烧开？"),
    ("怎么查看Python的版本？", "用什么命令能看到装的Python是哪个版本？"),
    ("为什么天空是蓝色的？", "天空看起来是蓝的，原因是什么？"),
    ("地球上为什么有四季？", "四季变化是怎么产生的？"),
    ("第二次世界大战是哪一年结束的？", "二战在哪一年结束？"),
    ("如何提高英语口语？", "有什么方法能让我的英语口语变好？"),
    ("太阳系最大的行星是哪个？", "太阳系里哪颗行星最大？"),
    ("写一首关于秋天的五言绝句。", "以秋天为题作一首五言绝句。"),
    ("进程和线程有什么区别？", "线程与进程的差别是什么？"),
    ("二分查找的时间复杂度是多少？", "二分搜索的复杂度是O(什么)？"),
    ("怎么退出vim？", "vim编辑器要怎么关掉退出？"),
    ("光速是多少？", "光一秒钟能跑多远？"),
    ("脱水有哪些症状？", "人脱水了会有什么表现？"),
    ("什么是通货膨胀？", "通货膨胀是什么意思？"),
    ("第一个登上月球的人是谁？", "人类第一个踏上月球的是哪位宇航员？"),
    ("如何在Linux中查看隐藏文件？", "Linux下怎么显示以点开头的隐藏文件？"),
    ("帮我写一封婉拒会议邀请的邮件。", "起草一封礼貌地拒绝参加会议的邮件。"),
    ("怎么合并Python中的两个字典？", "Python两个dict如何合成一个？"),
    ("红烧肉怎么做？", "红烧肉的做法是什么？"),
    ("如何缓解颈椎疼痛？", "脖子颈椎疼有什么缓解办法？"),
    ("一斤等于多少克？", "一斤是几克？"),
]

# --------------------------------------------------------------------------
# Hard negatives from templates. Each entry: (lang, template, values, n):
# the template's {x} takes two different values from the list; n pairs.
# A template with {x} and {y} takes (x, y) tuples and swaps one side.
# --------------------------------------------------------------------------

ENTITY_SWAP = [
    ("en", "What is the capital of {x}?",
     ["France", "Spain", "Italy", "Portugal", "Canada", "Brazil", "Egypt",
      "Japan"], 3),
    ("en", "What is the capital of {x}?",
     [("Iran", "Iraq"), ("Austria", "Australia"), ("Slovakia", "Slovenia"),
      ("Niger", "Nigeria"), ("Sweden", "Switzerland")], 5),
    ("en", "What is the population of {x}?",
     ["Tokyo", "London", "Paris", "Berlin", "Toronto", "Sydney"], 2),
    ("en", "Who wrote {x}?",
     ["Pride and Prejudice", "Moby-Dick", "War and Peace", "The Great Gatsby",
      "Jane Eyre", "Wuthering Heights"], 3),
    ("en", "How do I install {x} on Ubuntu 22.04?",
     ["Docker", "Node.js", "PostgreSQL", "Redis", "MongoDB", "Nginx"], 3),
    ("en", "What are the main advantages of {x} for building web apps?",
     ["React", "Vue", "Angular", "Svelte", "Django", "Rails"], 2),
    ("en", "Summarize the life and work of {x}.",
     ["Marie Curie", "Albert Einstein", "Isaac Newton", "Ada Lovelace",
      "Nikola Tesla", "Charles Darwin"], 3),
    ("en", "What is the best time of year to visit {x}?",
     ["Japan", "Iceland", "Peru", "Morocco", "Thailand", "New Zealand"], 2),
    ("en", "How tall is {x}?",
     ["Mount Everest", "K2", "Kilimanjaro", "Mont Blanc", "Denali"], 2),
    ("en", "Who is the current CEO of {x}?",
     ["Apple", "Microsoft", "Amazon", "Nvidia", "Netflix"], 2),
    ("en", "What currency is used in {x}?",
     ["Switzerland", "Sweden", "Denmark", "Poland", "Hungary"], 2),
    ("en", "Explain how {x} handles memory management.",
     ["Rust", "Go", "Swift", "Java"], 2),
    ("en", "What's the difference between Docker and {x}?",
     ["Podman", "Kubernetes", "Vagrant", "LXC"], 2),
    ("en", "Can {x} eat grapes?", [("dogs", "cats"), ("rabbits", "hamsters")], 2),
    ("en", "How long do I bake {x} in the oven at 200C?",
     ["chicken breast", "salmon", "pork chops", "potatoes"], 2),
    ("en", "What is the boiling point of {x}?",
     [("ethanol", "methanol"), ("water", "seawater")], 2),
    ("en", "Is it safe to eat raw {x}?", ["salmon", "chicken", "eggs", "tuna"],
     2),
    ("en", "What is a normal resting heart rate for {x}?",
     [("adults", "children"), ("men", "women")], 2),
    ("en", "How do I care for a {x} plant indoors?",
     ["cactus", "fern", "orchid", "monstera"], 2),
    ("en", "What side effects does {x} have?",
     [("ibuprofen", "paracetamol"), ("metformin", "metoprolol")], 2),
    ("en", "How do I sort a {x} in Python?",
     [("list", "dictionary"), ("list", "set")], 2),
    ("en", "How do I delete a remote {x} in git?", [("branch", "tag")], 1),
    ("en", "How do I migrate my {x} database to the cloud?",
     ["MySQL", "Oracle", "SQL Server"], 1),
    ("zh", "{x}的人口有多少？", ["北京", "上海", "广州", "深圳", "成都", "杭州"],
     3),
    ("zh", "{x}有哪些必去的景点？", ["西安", "重庆", "苏州", "厦门", "南京"], 2),
    ("zh", "{x}的省会是哪里？",
     [("山西", "陕西"), ("湖南", "湖北"), ("河南", "河北"), ("广东", "广西"),
      ("江西", "江苏")], 5),
    ("zh", "{x}的首都是哪里？", ["法国", "西班牙", "意大利", "德国", "加拿大"],
     2),
    ("zh", "{x}的首都是哪里？", [("奥地利", "澳大利亚"), ("伊朗", "伊拉克")], 2),
    ("zh", "{x}是哪个朝代的人？", ["李白", "杜甫", "苏轼", "白居易", "李清照"],
     3),
    ("zh", "介绍一下{x}的生平。", ["鲁迅", "老舍", "巴金", "沈从文"], 2),
    ("zh", "《{x}》的作者是谁？", ["红楼梦", "西游记", "水浒传", "三国演义"], 2),
    ("zh", "{x}冬天冷不冷？", ["哈尔滨", "昆明", "广州", "沈阳"], 2),
    ("zh", "{x}能吃葡萄吗？", [("狗", "猫"), ("兔子", "仓鼠")], 2),
    ("zh", "怎么在Ubuntu上安装{x}？", ["Docker", "MySQL", "Nginx", "Redis"], 2),
    ("zh", "{x}的副作用有哪些？", [("布洛芬", "对乙酰氨基酚"), ("阿莫西林", "头孢")],
     2),
    ("zh", "从北京到{x}坐高铁要多久？", ["上海", "广州", "西安", "武汉"], 2),
    ("zh", "{x}和React有什么区别？", ["Vue", "Angular", "Svelte"], 1),
    ("zh", "{x}怎么做才好吃？", ["红烧肉", "糖醋排骨", "宫保鸡丁", "鱼香肉丝"],
     2),
    ("zh", "去{x}旅游需要办签证吗？", ["日本", "泰国", "新加坡", "马来西亚"], 2),
]

NUMBER_CHANGE = [
    ("en", "What is {x}% of 80?", ["10", "15", "20", "25"], 2),
    ("en", "Give me {x} ideas for a birthday party.", ["3", "5", "10"], 2),
    ("en", "Write a {x}-word essay about climate change.",
     ["200", "500", "1000"], 2),
    ("en", "Convert {x} kilometers to miles.", ["5", "10", "21", "42"], 2),
    ("en", "What is {x} factorial?", ["5", "6", "7", "10"], 1),
    ("en", "Is {x} a prime number?", ["91", "97", "51", "53"], 2),
    ("en", "How many calories are in {x} grams of cooked rice?",
     ["100", "150", "200"], 1),
    ("en", "What's new in Java {x}?", ["17", "21", "11"], 1),
    ("en", "Is the iPhone {x} worth buying?", ["13", "14", "15"], 1),
    ("en", "What are the main differences between HTTP/1.1 and HTTP/{x}?",
     ["2", "3"], 1),
    ("en", "Who won the FIFA World Cup in {x}?",
     ["2010", "2014", "2018", "2022"], 2),
    ("en", "What is the sum of the first {x} natural numbers?",
     ["50", "100", "1000"], 1),
    ("en", "What is the monthly payment on a $300,000 mortgage at {x}% "
     "over 30 years?", ["5", "6", "6.5", "7"], 2),
    ("en", "Give me {x} examples of metaphors.", ["two", "three", "five"], 2),
    ("en", "What is 12 times {x}?", ["13", "14", "15"], 1),
    ("en", "Round 3.14159 to {x} decimal places.", ["2", "3", "4"], 1),
    ("en", "What is the square root of {x}?", ["144", "169", "196"], 1),
    ("en", "What does the HTTP status code {x} mean?",
     ["401", "403", "502", "504"], 2),
    ("en", "Is a {x}% raise good?", ["3", "5", "7", "10"], 1),
    ("en", "What is the difference between IPv{x} addresses and MAC "
     "addresses?", ["4", "6"], 1),
    ("en", "List the top {x} programming languages in 2024.",
     ["5", "10", "3"], 1),
    ("en", "Convert {x}pm Eastern time to London time.", ["3", "4", "9"], 1),
    ("en", "How much water should a {x}-year-old drink per day?",
     ["5", "10", "40", "70"], 2),
    ("en", "What was the population of the United States in {x}?",
     ["1950", "1980", "2000"], 1),
    ("en", "How many days are there between March 3 and April {x}?",
     ["10", "12", "15"], 1),
    ("en", "What is 0.1 + 0.{x} in JavaScript?", ["2", "3"], 1),
    ("zh", "{x}的平方根是多少？", ["144", "169", "196", "225"], 2),
    ("zh", "给我推荐{x}本书。", ["三", "五", "十"], 2),
    ("zh", "写一篇{x}字的作文，题目是我的家乡。", ["300", "500", "800"], 2),
    ("zh", "1000元打{x}折是多少钱？", ["八", "七", "九", "八五"], 2),
    ("zh", "3乘以{x}等于几？", ["7", "8", "9"], 1),
    ("zh", "{x}年世界杯的冠军是谁？", ["2010", "2014", "2018", "2022"], 2),
    ("zh", "第{x}次世界大战是怎么爆发的？", ["一", "二"], 1),
    ("zh", "{x}年级数学应用题怎么教孩子？", ["一", "二", "三", "四"], 2),
    ("zh", "存款利率从百分之{x}降到百分之一意味着什么？", ["三", "二", "四"], 1),
    ("zh", "房贷100万，30年，利率{x}%，每月还多少？", ["3.5", "4", "4.9"], 2),
    ("zh", "列出{x}个提高学习效率的方法。", ["三", "四", "五", "十"], 2),
    ("zh", "HTTP状态码{x}是什么意思？", ["401", "403", "500", "502"], 2),
    ("zh", "iPhone {x}值得买吗？", ["13", "14", "15"], 1),
    ("zh", "{x}假期去哪里玩比较好？", ["五一", "十一"], 1),
    ("zh", "给我{x}个关于时间的比喻句。", ["两", "三", "五"], 2),
    ("zh", "{x}岁的孩子每天应该睡多久？", ["3", "5", "8", "12"], 2),
    ("zh", "Python {x}有哪些新特性？", ["3.10", "3.11", "3.12"], 1),
    ("zh", "{x}公斤是多少斤？", ["50", "60", "75"], 1),
    ("zh", "第{x}季度的财报一般什么时候发布？", ["一", "三", "四"], 1),
]

# (lang, a, b) written out: negations are too varied for one template.
NEGATION = [
    ("en", "Is it safe to take ibuprofen on an empty stomach?",
     "Is it not safe to take ibuprofen on an empty stomach?"),
    ("en", "Why is my code working?", "Why is my code not working?"),
    ("en", "Write a SQL query that selects users who have placed an order.",
     "Write a SQL query that selects users who have not placed an order."),
    ("en", "List the EU countries that use the euro.",
     "List the EU countries that don't use the euro."),
    ("en", "Give me a pancake recipe with eggs.",
     "Give me a pancake recipe without eggs."),
    ("en", "Give me a regex that matches lines containing 'error'.",
     "Give me a regex that matches lines not containing 'error'."),
    ("en", "How do I make git ignore a file?",
     "How do I make git stop ignoring a file?"),
    ("en", "Which numbers between 1 and 20 are prime?",
     "Which numbers between 1 and 20 are not prime?"),
    ("en", "How do I filter rows where a column is null in pandas?",
     "How do I filter rows where a column is not null in pandas?"),
    ("en", "Find all files modified in the last 7 days on Linux.",
     "Find all files not modified in the last 7 days on Linux."),
    ("en", "Recommend a movie that is scary.",
     "Recommend a movie that is not scary."),
    ("en", "Write a cover letter that mentions my career break.",
     "Write a cover letter that doesn't mention my career break."),
    ("en", "Rewrite this sentence using the passive voice: The cat ate the fish.",
     "Rewrite this sentence without using the passive voice: The cat ate the "
     "fish."),
    ("en", "Write a function that checks whether a number is even.",
     "Write a function that checks whether a number is not even."),
    ("en", "Is coffee good for your health?",
     "Is coffee not good for your health?"),
    ("en", "Why does my Python script run in the terminal?",
     "Why doesn't my Python script run in the terminal?"),
    ("en", "Should I use a VPN on public Wi-Fi?",
     "Should I not use a VPN on public Wi-Fi?"),
    ("en", "What foods should I eat when I have diarrhea?",
     "What foods should I not eat when I have diarrhea?"),
    ("en", "Show me a CSS selector for elements with the class active.",
     "Show me a CSS selector for elements without the class active."),
    ("en", "Is it a good idea to store passwords in plain text?",
     "Is it not a good idea to store passwords in plain text?"),
    ("en", "List the planets that have rings.",
     "List the planets that have no rings."),
    ("en", "How do I make a bread recipe with yeast?",
     "How do I make a bread recipe with no yeast?"),
    ("en", "Which mushrooms are poisonous?", "Which mushrooms are not poisonous?"),
    ("en", "Write a function that returns true if the list is empty.",
     "Write a function that returns true if the list is not empty."),
    ("en", "Why do I always wake up at 3am?",
     "Why do I never wake up at 3am?"),
    ("en", "Is it possible to divide by zero in floating point?",
     "Is it impossible to divide by zero in floating point?"),
    ("en", "Give me examples of countries that drive on the left.",
     "Give me examples of countries that don't drive on the left."),
    ("en", "Is it legal to record a phone call in California?",
     "Is it illegal to record a phone call in California?"),
    ("en", "Explain when you should use an index in SQL.",
     "Explain when you should not use an index in SQL."),
    ("en", "What happens if I pay my credit card bill on time?",
     "What happens if I don't pay my credit card bill on time?"),
    ("en", "Tell me a joke that's appropriate for kids.",
     "Tell me a joke that's not appropriate for kids."),
    ("en", "Which Linux commands need sudo?",
     "Which Linux commands don't need sudo?"),
    ("zh", "哪些食物孕妇可以吃？", "哪些食物孕妇不可以吃？"),
    ("zh", "为什么我的代码能运行？", "为什么我的代码不能运行？"),
    ("zh", "写一个SQL查询，找出下过订单的用户。",
     "写一个SQL查询，找出没有下过订单的用户。"),
    ("zh", "列出使用欧元的欧盟国家。", "列出不使用欧元的欧盟国家。"),
    ("zh", "怎么让git忽略某个文件？", "怎么让git不忽略某个文件？"),
    ("zh", "pandas中怎么筛选某一列为空的行？", "pandas中怎么筛选某一列不为空的行？"),
    ("zh", "有糖蛋糕怎么做？", "无糖蛋糕怎么做？"),
    ("zh", "感冒了应该吃什么？", "感冒了不应该吃什么？"),
    ("zh", "写一个正则表达式，匹配包含error的行。",
     "写一个正则表达式，匹配不包含error的行。"),
    ("zh", "1到20之间哪些数是质数？", "1到20之间哪些数不是质数？"),
    ("zh", "吃早餐有什么好处？", "不吃早餐有什么好处？"),
    ("zh", "有工作经验怎么写简历？", "没有工作经验怎么写简历？"),
    ("zh", "成年人可以单独办银行卡吗？", "未成年人可以单独办银行卡吗？"),
    ("zh", "哪些Linux命令需要sudo？", "哪些Linux命令不需要sudo？"),
    ("zh", "喝咖啡对身体好吗？", "喝咖啡对身体不好吗？"),
    ("zh", "推荐一部恐怖的电影。", "推荐一部不恐怖的电影。"),
    ("zh", "哪些蘑菇有毒？", "哪些蘑菇没有毒？"),
    ("zh", "写一个函数，当列表为空时返回True。",
     "写一个函数，当列表不为空时返回True。"),
    ("zh", "什么情况下应该给数据库表加索引？",
     "什么情况下不应该给数据库表加索引？"),
    ("zh", "按时还信用卡会怎么样？", "不按时还信用卡会怎么样？"),
    ("zh", "在加州录音通话合法吗？", "在加州录音通话不合法吗？"),
    ("zh", "为什么我总是凌晨三点醒来？", "为什么我从不在凌晨三点醒来？"),
    ("zh", "哪些行星有光环？", "哪些行星没有光环？"),
    ("zh", "怎么做有酵母的面包？", "怎么做无酵母的面包？"),
    ("zh", "写一个检查数字是否为偶数的函数。", "写一个检查数字是否不为偶数的函数。"),
    ("zh", "公共WiFi上要用VPN吗？", "公共WiFi上不用VPN可以吗？"),
    ("zh", "别人说我说话太直，我该改吗？", "别人说我说话太直，我不该改吗？"),
    ("zh", "给孩子讲一个适合小朋友的笑话。", "给孩子讲一个不适合小朋友的笑话。"),
]

DIRECTION = [
    ("en", "Convert 100 degrees Celsius to Fahrenheit.",
     "Convert 100 degrees Fahrenheit to Celsius."),
    ("en", "Convert 37 Celsius to Fahrenheit", "Convert 37 Fahrenheit to Celsius"),
    ("en", "Convert 5 miles to kilometers.", "Convert 5 kilometers to miles."),
    ("en", "Convert 70 kg to pounds.", "Convert 70 pounds to kg."),
    ("en", "Write a Python script that converts CSV files to JSON.",
     "Write a Python script that converts JSON files to CSV."),
    ("en", "How do I convert a string to a list in Python?",
     "How do I convert a list to a string in Python?"),
    ("en", "How do I convert decimal to binary in C?",
     "How do I convert binary to decimal in C?"),
    ("en", "How do I migrate from MySQL to PostgreSQL?",
     "How do I migrate from PostgreSQL to MySQL?"),
    ("en", "What is the exchange rate from USD to EUR?",
     "What is the exchange rate from EUR to USD?"),
    ("en", "How long is the flight from New York to London?",
     "How long is the flight from London to New York?"),
    ("en", "How do I copy a file from my laptop to a remote server with scp?",
     "How do I copy a file from a remote server to my laptop with scp?"),
    ("en", "Give me tips for switching from Windows to Linux.",
     "Give me tips for switching from Linux to Windows."),
    ("en", "Convert a Unix timestamp to a date in JavaScript.",
     "Convert a date to a Unix timestamp in JavaScript."),
    ("en", "How do I convert an int to a string in Go?",
     "How do I convert a string to an int in Go?"),
    ("en", "How do I rebase my feature branch onto main?",
     "How do I rebase main onto my feature branch?"),
    ("en", "Subtract 15 from 40.", "Subtract 40 from 15."),
    ("en", "Divide 10 by 4.", "Divide 4 by 10."),
    ("en", "How do I redirect HTTP to HTTPS in nginx?",
     "How do I redirect HTTPS to HTTP in nginx?"),
    ("en", "What are common mistakes when translating from English to French?",
     "What are common mistakes when translating from French to English?"),
    ("en", "Recommend a good English to German dictionary app.",
     "Recommend a good German to English dictionary app."),
    ("en", "How do I convert YAML to JSON on the command line?",
     "How do I convert JSON to YAML on the command line?"),
    ("en", "How do I convert a PDF to a Word document?",
     "How do I convert a Word document to a PDF?"),
    ("en", "How do I port my app from Python 2 to Python 3?",
     "How do I port my app from Python 3 to Python 2?"),
    ("en", "Convert 2 cups to milliliters.", "Convert 2 milliliters to cups."),
    ("en", "Is 2 to the power of 10 bigger than 10 to the power of 2?",
     "Is 10 to the power of 2 bigger than 2 to the power of 10?"),
    ("en", "Write code to transfer $100 from account A to account B.",
     "Write code to transfer $100 from account B to account A."),
    ("en", "How do I convert inches to centimeters?",
     "How do I convert centimeters to inches?"),
    ("en", "Move all files from the src folder into the backup folder with a "
     "shell command.",
     "Move all files from the backup folder into the src folder with a shell "
     "command."),
    ("en", "How do I convert JPG images to PNG in bulk?",
     "How do I convert PNG images to JPG in bulk?"),
    ("zh", "100摄氏度等于多少华氏度？", "100华氏度等于多少摄氏度？"),
    ("zh", "5公里等于多少英里？", "5英里等于多少公里？"),
    ("zh", "人民币兑美元的汇率是多少？", "美元兑人民币的汇率是多少？"),
    ("zh", "从北京到上海的高铁最早一班是几点？", "从上海到北京的高铁最早一班是几点？"),
    ("zh", "用Python把JSON转成CSV。", "用Python把CSV转成JSON。"),
    ("zh", "十进制怎么转二进制？", "二进制怎么转十进制？"),
    ("zh", "Java中字符串怎么转整数？", "Java中整数怎么转字符串？"),
    ("zh", "怎么从MySQL迁移到PostgreSQL？", "怎么从PostgreSQL迁移到MySQL？"),
    ("zh", "怎么把文件从服务器复制到本地？", "怎么把文件从本地复制到服务器？"),
    ("zh", "斤怎么换算成公斤？", "公斤怎么换算成斤？"),
    ("zh", "繁体字怎么转换成简体字？", "简体字怎么转换成繁体字？"),
    ("zh", "农历怎么换算成公历？", "公历怎么换算成农历？"),
    ("zh", "40减去15等于多少？", "15减去40等于多少？"),
    ("zh", "JavaScript中时间戳怎么转日期？", "JavaScript中日期怎么转时间戳？"),
    ("zh", "中译英有哪些常用技巧？", "英译中有哪些常用技巧？"),
    ("zh", "推荐一个好用的中译英工具。", "推荐一个好用的英译中工具。"),
    ("zh", "从中文翻译成英文时要注意什么？", "从英文翻译成中文时要注意什么？"),
    ("zh", "从安卓手机换到iPhone，数据怎么迁移？",
     "从iPhone换到安卓手机，数据怎么迁移？"),
    ("zh", "Word文档怎么转PDF？", "PDF怎么转Word文档？"),
    ("zh", "怎么把HTTP重定向到HTTPS？", "怎么把HTTPS重定向到HTTP？"),
    ("zh", "英寸怎么换算成厘米？", "厘米怎么换算成英寸？"),
    ("zh", "写代码从账户A转100元到账户B。", "写代码从账户B转100元到账户A。"),
    ("zh", "10除以4等于多少？", "4除以10等于多少？"),
    ("zh", "从Windows换到Mac要注意什么？", "从Mac换到Windows要注意什么？"),
    ("zh", "YAML怎么转换成JSON？", "JSON怎么转换成YAML？"),
    ("zh", "把feature分支rebase到main上怎么操作？",
     "把main分支rebase到feature上怎么操作？"),
]

LANGUAGE_CHANGE = [
    ("en", "Write a function to reverse a string in {x}.",
     ["Python", "Java", "JavaScript", "Go", "Rust", "C++"], 3),
    ("en", "How do I read a file line by line in {x}?",
     ["Python", "Java", "Go", "C", "C++", "Ruby"], 3),
    ("en", "Implement quicksort in {x}.", [("C", "C++"), ("C", "C#"),
                                          ("Java", "JavaScript")], 3),
    ("en", "How do I make an HTTP request in {x}?",
     ["Python", "Node.js", "Go", "PHP", "Kotlin"], 2),
    ("en", "Show me a hello world program in {x}.",
     ["C", "C#", "Rust", "Haskell", "Swift"], 2),
    ("en", "How do I parse JSON in {x}?",
     [("Java", "JavaScript"), ("TypeScript", "JavaScript")], 2),
    ("en", "How do I handle exceptions in {x}?",
     ["Python", "Java", "C++", "Kotlin"], 2),
    ("en", "Write a unit test for a function that adds two numbers in {x}.",
     ["Python", "Java", "JavaScript", "Go"], 2),
    ("en", "Translate 'Where is the train station?' into {x}.",
     ["Spanish", "Italian", "German", "French", "Portuguese"], 3),
    ("en", "How do you say thank you in {x}?",
     ["Japanese", "Korean", "Mandarin", "Thai"], 2),
    ("en", "Write a short poem about the sea in {x}.",
     ["English", "French", "Spanish"], 1),
    ("zh", "用{x}实现快速排序。", ["Python", "Java", "Go", "C++", "Rust"], 3),
    ("zh", "用{x}读取一个文本文件。", [("C", "C++"), ("Java", "JavaScript")], 2),
    ("zh", "{x}怎么连接MySQL数据库？", ["Python", "Java", "PHP", "Go"], 2),
    ("zh", "用{x}写一个Hello World程序。", ["C", "C#", "Rust", "Kotlin"], 2),
    ("zh", "用{x}写一个单例模式。", ["Java", "Python", "C++"], 1),
    ("zh", "把“早上好”翻译成{x}。", ["日语", "韩语", "英语", "法语"], 3),
    ("zh", "“谢谢”用{x}怎么说？", ["粤语", "上海话", "四川话"], 2),
    ("zh", "用{x}写一篇关于春天的短文。", ["文言文", "白话文", "英文"], 2),
    ("zh", "把这段话翻译成{x}：我们下周一开会。", ["英文", "日文", "德文"], 2),
]

# The same request asked in the other language: the answer would come back
# in the wrong language.
CROSS_LINGUAL = [
    ("What is the capital of Australia?", "澳大利亚的首都是哪里？"),
    ("Why is the sky blue?", "为什么天空是蓝色的？"),
    ("What is the difference between TCP and UDP?", "TCP和UDP有什么区别？"),
    ("Explain the CAP theorem.", "解释CAP定理。"),
    ("How many bones are in the human body?", "人体有多少块骨头？"),
    ("What is Big O notation?", "什么是大O表示法？"),
    ("Explain how DNS works.", "解释DNS的工作原理。"),
    ("What is a REST API?", "什么是RESTful API？"),
]

FORMAT_CHANGE = [
    ("en", "List the planets of the solar system as {x}.",
     ["JSON", "YAML", "XML", "a markdown table", "a bullet list"], 3),
    ("en", "Give me the population of the five largest EU countries as {x}.",
     [("a table", "a bullet list"), ("CSV", "JSON")], 2),
    ("en", "Return the user records as a JSON {x}.", [("array", "object")], 1),
    ("en", "Write the README in {x}.",
     ["Markdown", "reStructuredText", "AsciiDoc", "HTML"], 2),
    ("en", "Create a resume template in {x}.", ["LaTeX", "HTML", "Markdown"], 2),
    ("en", "Output the results as a {x} list.",
     [("numbered", "comma-separated"), ("numbered", "bulleted")], 2),
    ("en", "Express 0.75 as a {x}.", ["fraction", "percentage"], 1),
    ("en", "Write today's date in {x} format.",
     [("ISO 8601", "RFC 2822"), ("US", "European")], 2),
    ("en", "Explain quantum computing in one {x}.",
     ["sentence", "paragraph"], 1),
    ("en", "Compare Python and Java in {x}.",
     [("a table", "prose"), ("a table", "bullet points")], 2),
    ("en", "Convert this to {x}: name=Alice, age=30, city=Paris.",
     ["JSON", "YAML", "XML", "TOML"], 3),
    ("en", "Tell the story of a lost dog as a {x}.",
     ["poem", "screenplay", "limerick"], 2),
    ("en", "Give me a weekly study schedule as a {x}.",
     [("table", "checklist"), ("calendar", "list")], 2),
    ("en", "Describe the HTTP request lifecycle as a {x}.",
     [("Mermaid sequence diagram", "numbered list"),
      ("PlantUML diagram", "Mermaid diagram")], 2),
    ("en", "Export the meeting notes as {x}.", [("plain text", "Markdown")], 1),
    ("zh", "用{x}列出中国的四大名著及作者。", ["表格", "列表", "JSON"], 3),
    ("zh", "以{x}格式输出以下信息：姓名张三，年龄30，城市北京。",
     ["JSON", "YAML", "XML"], 3),
    ("zh", "把会议纪要整理成{x}。", ["表格", "思维导图", "要点列表"], 2),
    ("zh", "用一{x}总结人工智能的发展历史。", ["句话", "段话"], 1),
    ("zh", "把这篇文章输出成{x}格式。", ["Markdown", "HTML"], 1),
    ("zh", "以春天为题写一首{x}。", [("七言绝句", "五言绝句"), ("现代诗", "七言绝句")],
     2),
    ("zh", "用{x}对比Python和Java的优缺点。", [("表格", "文字"), ("表格", "列表")],
     2),
    ("zh", "把0.75写成{x}。", ["分数", "百分数"], 1),
    ("zh", "把今天的日期写成{x}格式。", [("ISO 8601", "中文"), ("年月日", "日月年")],
     2),
    ("zh", "把下周的学习计划做成{x}。", [("表格", "清单"), ("日历", "列表")], 2),
]

# --------------------------------------------------------------------------
# Documents for template_document pairs.
# --------------------------------------------------------------------------

EN_DOCS = {
    "report": [
        "Northwind Outfitters reported revenue of $48.2 million for the third "
        "quarter, up 12% from the same period last year.",
        "Growth was driven mainly by the online store, which now accounts for "
        "41% of total sales.",
        "Gross margin fell slightly to 38.5% because of higher shipping costs "
        "and promotional discounts in August.",
        "Operating expenses rose by $2.1 million, reflecting the opening of two "
        "new distribution centres in Ohio and Nevada.",
        "The company ended the quarter with $15.7 million in cash and no "
        "long-term debt.",
        "Management raised its full-year revenue forecast to between $190 "
        "million and $195 million.",
        "Sales in the footwear category declined 4%, which the company "
        "attributed to unusually warm weather in September.",
        "The board approved a quarterly dividend of 8 cents per share, payable "
        "on November 15.",
        "Chief executive Laura Benton said the results showed that the shift to "
        "direct-to-consumer sales was paying off.",
        "Earnings per share came in at 34 cents, compared with 27 cents a year "
        "earlier.",
        "Analysts had expected revenue of $46.9 million and earnings of 31 "
        "cents per share.",
    ],
    "release": [
        "Version 3.4 of Tidewater introduces offline mode, so notes and tasks "
        "can now be edited without an internet connection.",
        "Changes made offline are synchronised automatically the next time the "
        "device connects.",
        "The search bar now supports filters such as tag:, due: and assigned:, "
        "which can be combined.",
        "We fixed a bug that caused recurring tasks to be duplicated when the "
        "time zone changed.",
        "Exporting a project to PDF is now about three times faster for "
        "projects with many attachments.",
        "The minimum supported Android version is now 9.0; older devices will "
        "keep receiving security fixes until March.",
        "Dark mode has been redesigned with higher contrast to improve "
        "readability.",
        "Administrators can now require two-factor authentication for every "
        "member of a workspace.",
        "The legacy REST API v1 will be switched off on 30 June; please "
        "migrate to v2 before then.",
        "Keyboard shortcuts can be customised from the Settings page under "
        "Accessibility.",
        "Thanks to everyone in the beta programme who reported issues and "
        "suggested improvements.",
    ],
    "storm": [
        "A powerful storm brought heavy rain and winds of up to 110 km/h to the "
        "northern coast on Tuesday night.",
        "More than 24,000 homes lost power, and crews were still working to "
        "restore electricity on Wednesday afternoon.",
        "Several roads were closed because of flooding, including the main "
        "highway between Port Allen and Greystone.",
        "Schools in three districts remained closed, and officials urged "
        "residents to avoid unnecessary travel.",
        "The weather service said rainfall totals reached 140 millimetres in "
        "some areas, the highest in a decade.",
        "Emergency services responded to more than 300 calls, most of them "
        "about fallen trees and flooded basements.",
        "No serious injuries were reported, although two people were rescued "
        "from a car stuck in floodwater.",
        "The storm is expected to weaken as it moves east over the weekend.",
        "Residents can report outages and downed power lines through the "
        "utility's website or by phone.",
        "The mayor said the city would open two temporary shelters for "
        "families whose homes were damaged.",
        "Forecasters warned that river levels could continue to rise until "
        "Thursday.",
    ],
    "email": [
        "Hi team, I wanted to give you a quick update on the website redesign "
        "project.",
        "The design phase is finished and the client approved the final "
        "mock-ups on Monday.",
        "Development started this week, and we are aiming to have a working "
        "staging site by the 14th.",
        "Unfortunately, the content migration is taking longer than planned "
        "because many of the old pages have broken images.",
        "Priya has agreed to help with the migration, which should get us back "
        "on track within a week.",
        "The client has also asked for a multilingual version, which was not "
        "part of the original scope.",
        "I will prepare a change request with a cost estimate and send it to "
        "them by Friday.",
        "Please log your hours in the tracker every day, as we will need "
        "accurate numbers for the invoice.",
        "Our next status meeting is moved from Wednesday to Thursday at 10:30 "
        "because of the public holiday.",
        "Let me know if you have any blockers or questions before then.",
        "Thanks for all the hard work so far. Daniel",
    ],
    "study": [
        "Sleep is widely believed to play a role in consolidating newly learned "
        "information.",
        "In this study we examined whether a short afternoon nap improves "
        "recall of word pairs in young adults.",
        "Ninety-six participants aged 18 to 30 learned a list of 40 word pairs "
        "at noon.",
        "Half of them then took a 45-minute nap, while the other half watched a "
        "nature documentary.",
        "Recall was tested at 5 p.m. and again the following morning.",
        "Participants who napped recalled on average 6.3 more word pairs in the "
        "afternoon test than those who stayed awake.",
        "The difference was smaller but still significant the next morning.",
        "Time spent in slow-wave sleep during the nap was positively correlated "
        "with the improvement in recall.",
        "No effect was found for a control task involving simple arithmetic.",
        "These results suggest that even brief periods of sleep can support "
        "memory consolidation.",
        "Future work should test whether the effect holds for older adults and "
        "for more complex material.",
    ],
    "complaint": [
        "I am writing to complain about order number 58213, which I placed on "
        "your website on 2 May.",
        "The order confirmation promised delivery within five working days, but "
        "the parcel arrived nearly three weeks later.",
        "When it finally arrived, the box was damaged and one of the two "
        "ceramic bowls inside was broken.",
        "I contacted your customer service team by chat on 24 May and was told "
        "that someone would call me within 48 hours.",
        "Nobody called, and my two follow-up emails have not received any "
        "reply.",
        "I have been a loyal customer for several years and have never had a "
        "problem like this before.",
        "I would like a full refund for the broken bowl and the delivery charge "
        "of 6.95 pounds.",
        "Alternatively, I would accept a replacement bowl if it can be "
        "delivered within a week.",
        "I have attached photographs of the damaged packaging and the broken "
        "bowl.",
        "Please confirm by email how you intend to resolve this matter.",
        "If I do not hear from you within 14 days, I will raise a dispute with "
        "my credit card provider.",
    ],
    "job": [
        "We are looking for a backend engineer to join our payments team in "
        "Lisbon or remotely within Europe.",
        "You will design and build services that process millions of "
        "transactions every day.",
        "Our stack is mostly Go and PostgreSQL, running on Kubernetes in two "
        "cloud regions.",
        "You should have at least three years of experience building "
        "production systems.",
        "Experience with distributed systems, message queues or financial "
        "software is a strong plus.",
        "You care about testing, code review and clear documentation.",
        "We offer a competitive salary, stock options and 25 days of paid "
        "holiday.",
        "The team works in two-week cycles and meets in person once a quarter.",
        "The interview process has four steps: a call with a recruiter, a "
        "technical interview, a system design session and a meeting with the "
        "team.",
        "We welcome applicants from all backgrounds and are happy to discuss "
        "flexible working hours.",
        "To apply, send your CV and a short note about a project you are proud "
        "of.",
    ],
    "lighthouse": [
        "The lighthouse at Carrow Point was built in 1856 after a series of "
        "shipwrecks on the nearby reef.",
        "Its original lamp burned whale oil and could be seen from about 15 "
        "nautical miles away.",
        "In 1902 the oil lamp was replaced with a kerosene burner and a larger "
        "Fresnel lens.",
        "The keeper's cottage housed three families at a time, who shared the "
        "work of keeping the light burning through the night.",
        "During the Second World War the light was dimmed to avoid guiding "
        "enemy ships.",
        "The station was electrified in 1954, and the last keeper left when the "
        "light was automated in 1979.",
        "Today the tower is owned by a local trust that restored the lantern "
        "room in 2011.",
        "Visitors can climb the 112 steps to the gallery on weekends between "
        "April and October.",
        "A small museum in the old cottage displays logbooks, uniforms and "
        "parts of the original lamp.",
        "The reef that made the lighthouse necessary is now a protected area "
        "for seabirds.",
        "The trust relies on donations and volunteers to keep the building "
        "open to the public.",
    ],
}

ZH_DOCS = {
    "report": [
        "星河电子公布第三季度营收为12.6亿元，同比增长15%。",
        "增长主要来自海外市场，海外收入占比已提升至38%。",
        "受原材料价格上涨影响，毛利率下降1.2个百分点至27.4%。",
        "本季度研发投入1.9亿元，占营收的15%，主要用于新一代电池技术。",
        "公司净利润为1.1亿元，较去年同期的0.8亿元有明显提升。",
        "手机配件业务收入下滑6%，公司称主要原因是国内市场竞争加剧。",
        "截至九月底，公司账上现金及等价物为23亿元，资产负债率为41%。",
        "管理层将全年营收目标上调至48亿元至50亿元之间。",
        "公司计划在明年上半年于越南新建一座工厂，预计投资5亿元。",
        "董事长王建华表示，海外渠道的布局已经进入收获期。",
        "分析师此前预计本季度营收为12.1亿元，净利润为0.95亿元。",
        "从地区来看，东南亚市场收入同比增长42%，欧洲市场增长18%，北美市场基本持平。",
        "储能产品线首次实现季度盈利，营收达到2.3亿元，占公司总营收的18%。",
        "销售费用为1.4亿元，同比增加9%，主要用于海外品牌推广和渠道建设。",
        "公司第三季度经营活动产生的现金流量净额为2.7亿元，较上一季度明显改善。",
        "报告期内，公司新增专利授权86项，其中发明专利31项。",
        "公司员工总数达到5200人，其中研发人员占比约为35%。",
        "受汇率波动影响，本季度产生汇兑损失约1200万元。",
        "公司表示，第四季度将继续控制成本，并加快新产品的量产进度。",
        "财报发布后，公司股价在盘后交易中上涨4.6%。",
        "公司将于10月28日晚上八点举行电话会议，向投资者解读本季度业绩。",
    ],
    "release": [
        "云笔记4.2版本正式上线，新增离线编辑功能，没有网络时也可以修改笔记。",
        "离线期间的修改会在设备重新联网后自动同步到云端。",
        "搜索功能支持按标签、日期和作者筛选，多个条件可以组合使用。",
        "修复了更换时区后重复提醒会被重复创建的问题。",
        "导出PDF的速度提升了约三倍，附件较多的笔记本也能快速导出。",
        "安卓端最低支持版本调整为Android 9，旧设备在明年三月前仍会收到安全更新。",
        "深色模式重新设计，提高了文字与背景的对比度。",
        "团队管理员现在可以要求所有成员开启两步验证。",
        "旧版开放接口v1将于6月30日停止服务，请尽快迁移到v2。",
        "快捷键可以在设置页面的辅助功能中自定义。",
        "感谢所有参与内测的用户提出的宝贵意见。",
        "新版本支持在笔记中直接插入表格，并可以对表格进行排序和筛选。",
        "图片上传后会自动压缩，单张图片的大小上限从10MB提高到20MB。",
        "网页剪藏插件现在支持Chrome、Edge和Firefox三种浏览器。",
        "共享笔记本的成员可以看到彼此的实时编辑光标，多人协作更加顺畅。",
        "修复了在部分华为手机上切换输入法时应用闪退的问题。",
        "回收站中的笔记现在会保留60天，之后才会被永久删除。",
        "企业版用户可以在管理后台查看成员的登录记录和操作日志。",
        "应用启动速度平均提升了40%，在低端设备上的改善尤其明显。",
        "我们调整了免费版的存储空间，从每月上传60MB提高到100MB。",
        "如果在升级后遇到任何问题，请通过应用内的反馈入口联系我们。",
    ],
    "storm": [
        "今年第9号台风于周二晚间在沿海地区登陆，登陆时中心附近最大风力达12级。",
        "受台风影响，全市约2.4万户居民停电，电力部门正在连夜抢修。",
        "多条道路因积水封闭，其中包括连接东港和西城的主干道。",
        "全市中小学周三停课一天，有关部门提醒市民非必要不外出。",
        "气象部门称，部分地区累计降雨量达到140毫米，为近十年来最高。",
        "消防和救援部门共接到300多起求助，大多与树木倒伏和地下室进水有关。",
        "目前没有人员重伤的报告，两名被困在积水车辆中的市民已被救出。",
        "预计台风将在周末减弱并向东北方向移动。",
        "市民可以通过供电公司的官方网站或热线电话报告停电情况。",
        "市政府已开放两处临时安置点，供房屋受损的家庭居住。",
        "气象台提醒，周四前河流水位可能继续上涨。",
        "台风登陆前，当地已提前转移了沿海低洼地区的1.2万名群众。",
        "机场取消了周二晚间至周三上午的全部进出港航班，共涉及约180个航班。",
        "铁路部门停运了途经沿海地区的部分动车组列车，旅客可以免费退票。",
        "渔业部门要求所有渔船回港避风，近3000艘渔船已经安全进港。",
        "部分老旧小区出现了墙体开裂和窗户破损的情况，物业正在逐户排查。",
        "城市排水部门出动了200多台抽水设备，集中处理积水严重的路段。",
        "多家超市延长了营业时间，并保证蔬菜、饮用水等生活物资的供应。",
        "农业部门初步统计，全市约有5000亩农作物受灾，具体损失还在核实中。",
        "保险公司已开通理赔绿色通道，受灾车辆和房屋可以快速报案。",
        "专家提醒，台风过后要注意饮用水安全，防止出现肠道传染病。",
    ],
    "notice": [
        "各位同事：经研究决定，公司将于下周四下午两点召开年度工作总结会议。",
        "会议地点为总部大楼三层第一会议室，预计时长两个小时。",
        "请各部门负责人提前准备本部门的年度工作汇报，每个部门发言时间不超过十分钟。",
        "汇报材料请于下周二下班前发送至行政部邮箱。",
        "会议将总结今年的主要成绩和存在的问题，并讨论明年的工作计划。",
        "人力资源部将在会上公布年度优秀员工名单。",
        "因会议室座位有限，除部门负责人外，每个部门最多派两名代表参加。",
        "不能到场的同事可以通过视频会议系统远程参加，会议链接将另行通知。",
        "会后将在一楼餐厅安排简单的晚餐，请需要用餐的同事于周三前登记。",
        "如有疑问，请联系行政部李敏，电话分机8023。",
        "感谢大家一年来的辛勤付出。",
        "请各部门在汇报中重点说明全年目标的完成情况，并附上主要数据。",
        "财务部将在会上通报全年预算执行情况以及明年的预算编制安排。",
        "会议期间请将手机调至静音状态，如有紧急事务请到会议室外处理。",
        "会议开始前十五分钟开始签到，请大家准时到场，不要迟到。",
        "需要使用投影设备的部门，请提前一天与行政部确认设备调试时间。",
        "外地分公司的负责人可以在周三报销往返交通费，住宿由公司统一安排。",
        "会议材料将在会后统一整理归档，并通过内部邮件发送给全体员工。",
        "本次会议还将讨论办公室搬迁的初步方案，请大家提前考虑相关意见。",
        "会议结束后，各部门需在一周内提交明年第一季度的详细工作计划。",
        "如因特殊情况无法参会，请提前向部门负责人和行政部书面请假。",
    ],
    "study": [
        "睡眠被普遍认为在巩固新学习的信息方面起着重要作用。",
        "本研究考察了午间小睡是否能提高青年人对词语配对的回忆成绩。",
        "共有96名18至30岁的受试者在中午学习了40组词语配对。",
        "随后，一半受试者小睡45分钟，另一半观看一部自然纪录片。",
        "研究人员在下午五点和第二天早上分别测试了受试者的回忆成绩。",
        "午睡组在下午的测试中平均比清醒组多回忆出6.3组词语。",
        "第二天早上两组之间的差异有所缩小，但仍然显著。",
        "午睡期间慢波睡眠的时长与回忆成绩的提高呈正相关。",
        "在简单算术的对照任务中没有发现类似效果。",
        "结果表明，即使是短暂的睡眠也有助于记忆巩固。",
        "未来的研究需要检验这一效果在老年人和更复杂的材料上是否同样存在。",
        "受试者在实验前一晚均被要求保持正常作息，并且不得饮用含咖啡因的饮料。",
        "午睡期间，研究人员使用多导睡眠监测仪记录了受试者的脑电活动。",
        "回忆测试采用提示回忆的方式，即给出词语配对中的第一个词，要求写出第二个词。",
        "为了排除疲劳的影响，两组受试者在测试前都完成了一份主观困倦量表。",
        "结果显示，两组受试者在测试前的主观困倦程度没有显著差异。",
        "午睡组中有7名受试者未能入睡，在分析中被单独列出。",
        "这些未入睡者的回忆成绩与清醒组相近，进一步支持了睡眠本身的作用。",
        "睡眠纺锤波的数量也与回忆成绩的提高存在弱相关。",
        "本研究的局限在于样本均为大学生，且只测试了词语这一种材料。",
        "该研究得到了国家自然科学基金的资助，作者声明不存在利益冲突。",
    ],
    "complaint": [
        "我于5月2日在贵公司网站下单，订单号为58213。",
        "订单确认邮件承诺五个工作日内送达，但包裹将近三周后才到。",
        "收到时外包装已经破损，里面两个陶瓷碗中有一个已经碎了。",
        "5月24日我通过在线客服反映了这个问题，客服说会在48小时内给我回电话。",
        "但至今没有人联系我，我发的两封邮件也没有得到任何回复。",
        "我在贵公司购物已经好几年了，以前从来没有遇到过这样的问题。",
        "我要求全额退还碎掉的碗的货款以及6.95元的运费。",
        "如果能在一周内送达，我也可以接受换一个新的碗。",
        "附件是破损包装和碎碗的照片。",
        "请通过邮件告诉我你们打算如何处理。",
        "如果14天内没有收到答复，我将向信用卡公司提出争议。",
        "这套碗是我买来送给父母的结婚纪念日礼物，现在已经错过了纪念日。",
        "包裹的物流信息在一周多的时间里一直显示为运输中，没有任何更新。",
        "我曾两次拨打客服电话，但每次都排队超过二十分钟后被自动挂断。",
        "快递员送货时没有等我验货就离开了，我是在打开包裹后才发现碗碎了。",
        "外包装箱里只有少量的泡沫填充物，完全不足以保护易碎的陶瓷制品。",
        "我注意到网站上有其他顾客也反映过类似的包装问题。",
        "希望贵公司能够重视这个问题，改进易碎商品的包装方式。",
        "我已经保留了原包装箱和所有的碎片，如有需要可以寄回。",
        "我的联系电话是138开头的那个号码，白天都可以接听。",
        "期待贵公司尽快给出一个令人满意的答复。",
    ],
    "travel": [
        "杭州是一座适合慢慢游览的城市，西湖是大多数游客的第一站。",
        "建议清晨从断桥出发，沿白堤步行到孤山，人少景美。",
        "中午可以去河坊街附近吃一碗片儿川，再尝尝葱包桧。",
        "下午可以去灵隐寺，门票加飞来峰景区大约需要75元。",
        "如果时间充裕，第二天可以去龙井村喝茶，顺便看看茶园。",
        "九溪十八涧适合徒步，全程大约需要两个小时。",
        "晚上推荐去看一场《宋城千古情》，需要提前在网上订票。",
        "杭州地铁覆盖了主要景点，游客也可以租借公共自行车。",
        "春季和秋季是最适合游览的季节，夏天比较闷热。",
        "节假日期间西湖周边交通管制较多，尽量避免自驾。",
        "住宿建议选择在西湖附近或武林广场一带，出行比较方便。",
        "西湖游船分为手划船和电动船两种，手划船更有意境，但价格稍贵。",
        "雷峰塔的门票为40元，傍晚登塔可以看到西湖的日落。",
        "苏堤全长将近三公里，春天桃花盛开的时候最为美丽。",
        "想看荷花的话，六月到七月去曲院风荷最合适。",
        "西溪湿地离市区稍远，适合安排半天时间，坐摇橹船游览。",
        "杭州的特色菜有西湖醋鱼、东坡肉和龙井虾仁，可以去老字号餐馆品尝。",
        "游客较多的景点建议提前在官方小程序上预约，节省排队时间。",
        "从杭州东站到西湖可以乘坐地铁1号线，大约需要半个小时。",
        "如果带着老人和孩子，建议放慢节奏，每天安排两到三个景点即可。",
        "离开杭州前，可以在茶叶店买一些明前龙井作为伴手礼。",
    ],
    "job": [
        "我们正在招聘一名后端开发工程师，加入支付团队，工作地点在深圳。",
        "你将负责设计和开发每天处理数百万笔交易的服务。",
        "我们的技术栈主要是Go和PostgreSQL，服务部署在两个云区域的Kubernetes上。",
        "要求至少三年的线上系统开发经验。",
        "有分布式系统、消息队列或金融软件经验者优先。",
        "重视测试、代码评审和清晰的文档。",
        "我们提供有竞争力的薪资、期权以及每年15天的带薪年假。",
        "团队以两周为一个迭代周期，每季度线下聚会一次。",
        "面试流程包括电话初筛、技术面试、系统设计面试和团队面谈四个环节。",
        "欢迎不同背景的候选人申请，工作时间可以灵活商量。",
        "有意者请将简历和一段介绍自己得意项目的文字发送至招聘邮箱。",
        "你将与产品经理和风控团队紧密合作，共同设计新的支付和结算功能。",
        "你需要参与系统的容量规划和性能优化，保证服务在高峰期稳定运行。",
        "我们希望你熟悉至少一种关系型数据库，并理解事务和索引的原理。",
        "有高并发系统设计经验或者参与过开源项目的候选人优先考虑。",
        "团队采用代码评审和自动化测试来保证代码质量，每天多次发布上线。",
        "公司为员工提供六险一金、年度体检和补充商业医疗保险。",
        "每年有专门的学习预算，可以用于购买书籍、参加培训和技术会议。",
        "办公室位于南山区科技园，距离地铁站步行约五分钟。",
        "新员工入职后会有一位导师带领，帮助尽快熟悉业务和系统。",
        "我们会在收到简历后的五个工作日内给予回复。",
    ],
}

# Instructions; True = the answer depends on every detail of the document
# (so one changed figure or one dropped sentence changes the answer).
EN_DOC_INSTR = [
    ("Summarise the following text:\n\n{doc}", True),
    ("Summarize this in three bullet points:\n\n{doc}", True),
    ("Translate the following into French:\n\n{doc}", True),
    ("Fix any grammar or spelling mistakes in this text and return the "
     "corrected version:\n\n{doc}", True),
    ("{doc}\n\nTL;DR?", True),
    ("Extract all numbers and dates from the text below as a list.\n\n{doc}",
     True),
    ("Write a short headline for this article:\n\n{doc}", False),
    ("What is the tone of the following text? Explain briefly.\n\n{doc}",
     False),
]

ZH_DOC_INSTR = [
    ("总结以下内容：\n\n{doc}", True),
    ("请用三句话概括下面这段文字：\n{doc}", True),
    ("把下面这段话翻译成英文：\n{doc}", True),
    ("帮我修改下面这段文字中的错别字和语病：\n{doc}", True),
    ("{doc}\n\n以上内容的要点是什么？", True),
    ("提取下面文字中所有的数字和日期：\n{doc}", True),
    ("给下面这篇文章起一个标题：\n{doc}", False),
]

CODE_SNIPPETS = [
    # (name, language fence, code, one-character-ish variant)
    ("merge", "python",
     "def merge_intervals(intervals):\n"
     "    if not intervals:\n"
     "        return []\n"
     "    intervals.sort(key=lambda x: x[0])\n"
     "    merged = [intervals[0]]\n"
     "    for start, end in intervals[1:]:\n"
     "        last = merged[-1]\n"
     "        if start <= last[1]:\n"
     "            last[1] = max(last[1], end)\n"
     "        else:\n"
     "            merged.append([start, end])\n"
     "    return merged\n",
     ("if start <= last[1]:", "if start < last[1]:")),
    ("moving", "python",
     "def moving_average(values, window):\n"
     "    if window <= 0:\n"
     "        raise ValueError(\"window must be positive\")\n"
     "    result = []\n"
     "    total = 0.0\n"
     "    for i, v in enumerate(values):\n"
     "        total += v\n"
     "        if i >= window:\n"
     "            total -= values[i - window]\n"
     "        if i >= window - 1:\n"
     "            result.append(total / window)\n"
     "    return result\n",
     ("if i >= window:", "if i > window:")),
    ("config", "python",
     "import json\n\n"
     "def load_config(path, defaults=None):\n"
     "    defaults = defaults or {}\n"
     "    try:\n"
     "        with open(path, encoding=\"utf-8\") as f:\n"
     "            data = json.load(f)\n"
     "    except FileNotFoundError:\n"
     "        return dict(defaults)\n"
     "    config = dict(defaults)\n"
     "    for key, value in data.items():\n"
     "        if key in defaults and type(value) is not type(defaults[key]):\n"
     "            raise TypeError(f\"{key}: expected \"\n"
     "                            f\"{type(defaults[key]).__name__}\")\n"
     "        config[key] = value\n"
     "    return config\n",
     ("except FileNotFoundError:", "except OSError:")),
    ("retry", "javascript",
     "async function fetchWithRetry(url, options = {}, retries = 3) {\n"
     "  for (let attempt = 0; attempt <= retries; attempt++) {\n"
     "    try {\n"
     "      const res = await fetch(url, options);\n"
     "      if (res.status >= 500 && attempt < retries) {\n"
     "        await new Promise(r => setTimeout(r, 2 ** attempt * 250));\n"
     "        continue;\n"
     "      }\n"
     "      return res;\n"
     "    } catch (err) {\n"
     "      if (attempt === retries) throw err;\n"
     "    }\n"
     "  }\n"
     "}\n",
     ("attempt <= retries; attempt++", "attempt < retries; attempt++")),
    ("sql", "sql",
     "-- Top customers by revenue since the start of 2024, with the\n"
     "-- number of orders each one placed.\n"
     "SELECT c.id, c.name, COUNT(o.id) AS orders, SUM(o.total) AS revenue\n"
     "FROM customers c\n"
     "LEFT JOIN orders o ON o.customer_id = c.id\n"
     "WHERE o.created_at >= DATE '2024-01-01'\n"
     "GROUP BY c.id, c.name\n"
     "HAVING COUNT(o.id) > 2\n"
     "ORDER BY revenue DESC\n"
     "LIMIT 20;\n",
     ("LEFT JOIN orders o", "INNER JOIN orders o")),
    ("bsearch", "python",
     "def binary_search(items, target):\n"
     "    \"\"\"Returns the index of target in the sorted list items, or -1.\"\"\"\n"
     "    lo, hi = 0, len(items) - 1\n"
     "    while lo <= hi:\n"
     "        mid = (lo + hi) // 2\n"
     "        if items[mid] == target:\n"
     "            return mid\n"
     "        if items[mid] < target:\n"
     "            lo = mid + 1\n"
     "        else:\n"
     "            hi = mid - 1\n"
     "    return -1\n",
     ("while lo <= hi:", "while lo < hi:")),
]

EN_CODE_INSTR = [
    "Find the bug in this code:\n\n```{lang}\n{code}```",
    "Explain what this code does, line by line:\n\n```{lang}\n{code}```",
    "Add comments to this code:\n\n```{lang}\n{code}```",
]
ZH_CODE_INSTR = [
    "帮我找一下这段代码的bug：\n\n```{lang}\n{code}```",
    "解释这段代码的作用：\n```{lang}\n{code}```",
]

DOC_MIN, DOC_MAX = 300, 1500


def make_doc(sentences, lang, k):
    idx = sorted(rng.sample(range(len(sentences)), k))
    sep = " " if lang == "en" else ""
    return idx, sep.join(sentences[i] for i in idx)


def doc_len_ok(t):
    return DOC_MIN <= len(t) <= DOC_MAX


def change_a_number(doc):
    nums = list(re.finditer(r"\d+(?:\.\d+)?", doc))
    if not nums:
        return None
    m = rng.choice(nums)
    v = m.group()
    if "." in v:
        whole, frac = v.split(".")
        new = whole + "." + str((int(frac) + rng.randint(1, 8)) % 10 ** len(frac)
                               ).zfill(len(frac))
    else:
        n = int(v)
        new = str(n + rng.choice([1, 2, 3, 5, 10]) if n < 1900 or n > 2100
                  else n + rng.choice([-2, -1, 1, 2]))
    if new == v:
        return None
    return doc[:m.start()] + new + doc[m.end():]


def template_document_pairs(lang, count, out):
    docs = EN_DOCS if lang == "en" else ZH_DOCS
    instrs = EN_DOC_INSTR if lang == "en" else ZH_DOC_INSTR
    topics = sorted(docs)
    kmin, kmax = (4, 8) if lang == "en" else (11, 18)
    made = 0
    tries = 0
    while made < count and tries < count * 50:
        tries += 1
        instr, detail = rng.choice(instrs)
        t1 = rng.choice(topics)
        k = rng.randint(kmin, kmax)
        _, d1 = make_doc(docs[t1], lang, k)
        mode = rng.choice(["other_topic", "same_topic", "changed_number",
                           "dropped_sentence"])
        if mode in ("changed_number", "dropped_sentence") and not detail:
            mode = "other_topic"
        if mode == "other_topic":
            t2 = rng.choice([t for t in topics if t != t1])
            _, d2 = make_doc(docs[t2], lang, rng.randint(kmin, kmax))
        elif mode == "same_topic":
            _, d2 = make_doc(docs[t1], lang, rng.randint(kmin, kmax))
        elif mode == "changed_number":
            d2 = change_a_number(d1)
        else:
            sents = (re.split(r"(?<=[.!?]) ", d1) if lang == "en"
                     else re.split(r"(?<=[。！？])", d1))
            sents = [s for s in sents if s]
            if len(sents) < 4:
                continue
            del sents[rng.randrange(1, len(sents))]
            d2 = (" " if lang == "en" else "").join(sents)
        if not d2 or d2 == d1:
            continue
        a = instr.format(doc=d1)
        b = instr.format(doc=d2)
        if not (doc_len_ok(a) and doc_len_ok(b)):
            continue
        out.append(pair(a, b, False, "template_document", lang))
        made += 1


def code_pairs(lang, out):
    instrs = EN_CODE_INSTR if lang == "en" else ZH_CODE_INSTR
    for i, (name, fence, code, (old, new)) in enumerate(CODE_SNIPPETS):
        instr = instrs[i % len(instrs)]
        a = instr.format(lang=fence, code=code)
        # The same code with one operator changed...
        b = instr.format(lang=fence, code=code.replace(old, new))
        assert a != b
        if doc_len_ok(a) and doc_len_ok(b):
            out.append(pair(a, b, False, "template_document", lang))
        # ... and another snippet under the same instruction.
        other = CODE_SNIPPETS[(i + 1) % len(CODE_SNIPPETS)]
        c = instr.format(lang=other[1], code=other[2])
        if doc_len_ok(a) and doc_len_ok(c) and lang == "en":
            out.append(pair(a, c, False, "template_document", lang))


def long_near_duplicates(lang, count, out):
    """Near-duplicates of long requests: the same pasted document with
    different white space, a politeness word or a trailing newline."""
    docs = EN_DOCS if lang == "en" else ZH_DOCS
    instrs = EN_DOC_INSTR if lang == "en" else ZH_DOC_INSTR
    topics = sorted(docs)
    made = 0
    tries = 0
    while made < count and tries < count * 50:
        tries += 1
        instr, _ = rng.choice(instrs)
        t = rng.choice(topics)
        _, d = make_doc(docs[t], lang, rng.randint(6, 9) if lang == "en" else rng.randint(11, 16))
        a = instr.format(doc=d)
        op = rng.choice(["newlines", "trailing", "polite", "indent"])
        if op == "newlines":
            b = a.replace("\n\n", "\n") if "\n\n" in a else a.replace("\n", "\n\n")
        elif op == "trailing":
            b = a + "\n\n"
        elif op == "indent":
            b = a.replace("\n", "\n   ", 1)
        else:
            if lang == "en":
                b = ("Please " + first_lower(a)) if not a.startswith(d) else \
                    a.replace("TL;DR?", "TL;DR please?")
            else:
                b = ("请" + a) if not a.startswith(d) else a + "谢谢"
        if b == a or not doc_len_ok(a):
            continue
        out.append(pair(a, b, True, "near_duplicate", lang))
        made += 1


# --------------------------------------------------------------------------
# Pair construction.
# --------------------------------------------------------------------------

def pair(a, b, same, category, lang):
    return {"a": a, "b": b, "same": same, "category": category, "lang": lang}


def light_noise(s, lang):
    """Meaning-preserving noise for a hard negative's new request (filler,
    case, punctuation, spacing; never typos), so that the negative is not
    trivially told apart by its decoration."""
    if rng.random() >= 0.3:
        return s
    kind = "q" if s.rstrip().endswith(("?", "？")) else "i"
    if lang == "en":
        op = rng.choice(["filler", "case", "punct", "space"])
        r = en_apply(s, kind, op)
    else:
        op = rng.choice(["filler", "punct", "space"])
        r = zh_apply(s, kind, op)
    return r or s


def template_pairs(spec, category, out):
    for lang, tmpl, values, n in spec:
        if isinstance(values[0], tuple):
            chosen = list(values)
            rng.shuffle(chosen)
            chosen = chosen[:n]
            for x, y in chosen:
                if rng.random() < 0.5:
                    x, y = y, x
                a = tmpl.format(x=x)
                b = light_noise(tmpl.format(x=y), lang)
                out.append(pair(a, b, False, category, lang))
        else:
            seen = set()
            while len(seen) < n:
                x, y = rng.sample(values, 2)
                if (x, y) in seen or (y, x) in seen:
                    continue
                seen.add((x, y))
                a = tmpl.format(x=x)
                b = light_noise(tmpl.format(x=y), lang)
                out.append(pair(a, b, False, category, lang))


def written_pairs(spec, category, out):
    for lang, a, b in spec:
        if rng.random() < 0.5:
            a, b = b, a
        out.append(pair(a, light_noise(b, lang), False, category, lang))


def near_duplicates(out):
    bases = ([("en", "q", s) for s in EN_Q] + [("en", "i", s) for s in EN_I]
             + [("zh", "q", s) for s in ZH_Q] + [("zh", "i", s) for s in ZH_I])
    for lang, kind, s in bases:
        # Reordered filler words: both sides decorated differently.
        if lang == "en" and kind == "i" and rng.random() < 0.2:
            r = en_reorder(s, kind)
            if r:
                out.append(pair(r[0], r[1], True, "near_duplicate", lang))
                continue
        nops = rng.choice([1, 1, 2, 2, 3])
        b = None
        for _ in range(5):
            b = perturb(s, kind, lang, nops)
            if b:
                break
        if not b:
            continue
        a = s
        if rng.random() < 0.25:
            a, b = b, a  # the messy text was stored first
        out.append(pair(a, b, True, "near_duplicate", lang))
    for a, b in NUMBER_FORMAT_DUPS:
        out.append(pair(a, b, True, "near_duplicate", "en"))
    for a, b in NUMBER_FORMAT_DUPS_ZH:
        out.append(pair(a, b, True, "near_duplicate", "zh"))
    # Exactly equal requests (the exact layer).
    for s in EN_Q[:4] + ZH_Q[:4]:
        out.append(pair(s, s, True, "near_duplicate",
                        "zh" if re.search(r"[\u4e00-\u9fff]", s) else "en"))


def unrelated(out, n_en, n_zh, n_cross):
    en = EN_Q + EN_I
    zh = ZH_Q + ZH_I
    for pool, lang, n in ((en, "en", n_en), (zh, "zh", n_zh)):
        for _ in range(n):
            a, b = rng.sample(pool, 2)
            out.append(pair(a, b, False, "unrelated", lang))
    for _ in range(n_cross):
        a, b = rng.choice(en), rng.choice(zh)
        if rng.random() < 0.5:
            out.append(pair(a, b, False, "unrelated", "zh"))
        else:
            out.append(pair(b, a, False, "unrelated", "en"))


def main():
    out = []
    near_duplicates(out)
    long_near_duplicates("en", 6, out)
    long_near_duplicates("zh", 6, out)
    for a, b in EN_PARAPHRASES:
        out.append(pair(a, b, True, "paraphrase", "en"))
    for a, b in ZH_PARAPHRASES:
        out.append(pair(a, b, True, "paraphrase", "zh"))
    template_pairs(ENTITY_SWAP, "entity_swap", out)
    template_pairs(NUMBER_CHANGE, "number_change", out)
    written_pairs(NEGATION, "negation", out)
    written_pairs(DIRECTION, "direction", out)
    template_pairs(LANGUAGE_CHANGE, "language_change", out)
    for en, zh in CROSS_LINGUAL:
        if rng.random() < 0.5:
            out.append(pair(en, zh, False, "language_change", "zh"))
        else:
            out.append(pair(zh, en, False, "language_change", "en"))
    template_pairs(FORMAT_CHANGE, "format_change", out)
    template_document_pairs("en", 34, out)
    template_document_pairs("zh", 30, out)
    code_pairs("en", out)
    code_pairs("zh", out)
    unrelated(out, 30, 24, 8)

    seen = set()
    for p in out:
        key = (p["a"], p["b"])
        assert key not in seen or p["a"] == p["b"], key
        seen.add(key)
        assert p["a"] != p["b"] or p["same"], p
    if "--stats" in sys.argv[1:]:
        print_stats(out)
        return
    for p in out:
        sys.stdout.write(json.dumps(p, ensure_ascii=False) + "\n")


def print_stats(out):
    """The composition table of docs/cache-evaluation.md (markdown)."""
    cats = []
    for p in out:
        if p["category"] not in cats:
            cats.append(p["category"])
    print("| category | same | en | zh | total |")
    print("| --- | --- | ---: | ---: | ---: |")
    tot = {"en": 0, "zh": 0}
    for c in cats:
        ps = [p for p in out if p["category"] == c]
        n = {lang: sum(1 for p in ps if p["lang"] == lang) for lang in tot}
        for lang in tot:
            tot[lang] += n[lang]
        same = "yes" if ps[0]["same"] else "no"
        print("| %s | %s | %d | %d | %d |" % (c, same, n["en"], n["zh"],
                                              len(ps)))
    print("| **all** | | %d | %d | %d |" % (tot["en"], tot["zh"], len(out)))


if __name__ == "__main__":
    main()
