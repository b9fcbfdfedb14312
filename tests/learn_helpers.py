"""Decks shared by the learning tests."""

#: a small diode-resistor network with two inputs, a bias source and one output
RD_DECK = """small R+D network
.model dm D(IS=1e-14 N=1)
vx1 in1 0 DC 0.5
vx2 in2 0 DC 1.0
vb b 0 DC 0.3
r1 in1 h1 1k
r2 in2 h1 2k
r3 in1 h2 1.5k
r4 in2 h2 3k
r5 h1 out 1k
r6 h2 out 2.2k
r7 b h1 4k
d1 h1 h2 dm
d2 h2 0 dm
rl out 0 5k
.end
"""
