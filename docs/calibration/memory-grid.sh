#!/bin/bash
# Yosys 0.23's placement of the memory shapes spikeforge generates, for hdl-gen/src/memmap.rs's
# tests: a ROM with random contents and a registered read (roms.txt), and a simple dual-port RAM
# with one whole-word write port and a registered read (rams.txt), each synthesised with
# synth_ecp5 -nowidelut and synth_ice40. Minutes. usage: memory-grid.sh OUTDIR
set -eu
out=${1:-grid}; mkdir -p "$out"; cd "$out"
: > roms.txt
for W in 1 2 3 4 6 8 9 12 16 18 24 35 64; do for D in 32 64 128 256 300 512 700 1024 1500 2048 3000 4096 6000 8192 12000 16384 30000 73728; do
  python3 -c "
import random
random.seed($W*100000+$D)
open('r.hex','w').write('\n'.join(format(random.getrandbits($W),'x') for _ in range($D)))"
  printf 'module r(input clk, input [16:0] a, output reg [%d:0] q);\nreg [%d:0] m [0:%d];\ninitial $readmemh("r.hex", m);\nalways @(posedge clk) q <= m[a];\nendmodule\n' $((W-1)) $((W-1)) $((D-1)) > r.v
  yosys -q -p "read_verilog r.v; synth_ecp5 -nowidelut -top r; tee -q -o e.txt stat" >/dev/null
  yosys -q -p "read_verilog r.v; synth_ice40 -top r; tee -q -o i.txt stat" >/dev/null
  e=$(grep -E ' DP16KD' e.txt | awk '{print $2}'); i=$(grep -E 'SB_RAM40' i.txt | awk '{print $2}')
  echo "$W $D ${e:-0} ${i:-0}" >> roms.txt
done; done
: > rams.txt
for W in 1 2 3 4 6 8 9 12 16 18 24 36 48 64 96; do for D in 8 16 24 32 48 64 96 128 256 384 512 1024 2048 4096; do
  A=$(python3 -c "import math;print(max(1,math.ceil(math.log2($D))))")
  printf 'module r(input clk, input we, input [%d:0] wa, input [%d:0] ra, input [%d:0] d, output reg [%d:0] q);\nreg [%d:0] m [0:%d];\nalways @(posedge clk) begin if (we) m[wa] <= d; q <= m[ra]; end\nendmodule\n' $((A-1)) $((A-1)) $((W-1)) $((W-1)) $((W-1)) $((D-1)) > m.v
  yosys -q -p "read_verilog m.v; synth_ecp5 -nowidelut -top r; tee -q -o e.txt stat" >/dev/null
  yosys -q -p "read_verilog m.v; synth_ice40 -top r; tee -q -o i.txt stat" >/dev/null
  e=$(grep -E ' DP16KD' e.txt | awk '{print $2}'); dpr=$(grep -E 'TRELLIS_DPR16X4' e.txt | awk '{print $2}'); el=$(grep -E ' LUT4' e.txt | awk '{print $2}')
  i=$(grep -E 'SB_RAM40' i.txt | awk '{print $2}'); il=$(grep -E 'SB_LUT4' i.txt | awk '{print $2}')
  echo "$W $D ecp5 ${e:-0} dpr ${dpr:-0} lut ${el:-0} ice40 ${i:-0} lut ${il:-0}" >> rams.txt
done; done
