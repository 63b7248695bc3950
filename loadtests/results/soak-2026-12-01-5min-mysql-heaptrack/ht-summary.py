#!/usr/bin/env python3
"""Condense heaptrack_print -p output: per peak site, the frames in mysql_async, mysql_common and linktrack."""
import re,sys
lines=open(sys.argv[1]).read().split('\n')
blocks=[];cur=None
for l in lines:
    m=re.match(r'^(\S+) peak memory consumed over (\d+) calls from',l)
    m2=re.match(r'^(\S+) consumed over (\d+) calls from',l)
    if m:
        blocks.append(('TOP',m.group(1),m.group(2),[])); cur=blocks[-1]
    elif m2:
        blocks.append(('  sub',m2.group(1),m2.group(2),[])); cur=blocks[-1]
    elif cur is not None and 'at ' in l:
        cur[3].append(l.strip()[3:])
for kind,amt,calls,bt in blocks:
    ours=[re.sub(r'^.*/(mysql_async|mysql_common|tokio|hyper)-[0-9.]+/', r'\1/', b) for b in bt if re.match(r'(src/(store|events|http|cache|app|main|runtime|telemetry)|.*mysql_common.*packets|.*mysql_async.*(stmt|conn/mod)|.*hyper-1)',b)]
    print(kind,amt,calls,'|', ' ; '.join(ours[:4]) if ours else ' ; '.join(bt[:2]))
for l in lines[-6:]: print(l)
