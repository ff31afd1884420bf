// Icarus Verilog testbench for a generated spikeforge design (the synthesis top): streams N
// images from images.hex (one pixel per line) into s_axis, BEAT pixels per beat, and prints each
// m_axis result beat as "R <hex>". Parameters and the top's name come from the command line
// (-P tb.N=… , -DDUT=name).
`timescale 1ns/1ps
module tb;
    parameter N = 1;
    parameter IMG = 1;
    parameter BEAT = 1;
    parameter PIX_BITS = 8;
    parameter OUT_BITS = 8;
    parameter MAX_CYCLES = 1000000;
    reg clk = 1'b0;
    reg rst = 1'b1;
    reg [7:0] px [0:N*IMG-1];
    reg s_valid = 1'b0;
    wire s_ready;
    reg [BEAT*PIX_BITS-1:0] s_data = {BEAT*PIX_BITS{1'b0}};
    wire m_valid;
    wire [OUT_BITS-1:0] m_data;
    `DUT dut (
        .clk(clk), .rst(rst),
        .s_axis_tvalid(s_valid), .s_axis_tready(s_ready), .s_axis_tdata(s_data),
        .m_axis_tvalid(m_valid), .m_axis_tready(1'b1), .m_axis_tdata(m_data)
    );
    integer sent = 0;
    integer got = 0;
    integer cycles = 0;
    integer i;
    always #5 clk = ~clk;
    initial begin
        $readmemh("images.hex", px);
        repeat (4) @(posedge clk);
        rst <= 1'b0;
    end
    // Inputs change on the falling edge, away from the DUT's sampling edge.
    always @(negedge clk) begin
        s_valid <= !rst && (sent < N * IMG / BEAT);
        for (i = 0; i < BEAT; i = i + 1)
            s_data[i*PIX_BITS +: PIX_BITS] <= px[(sent * BEAT + i) % (N * IMG)][PIX_BITS-1:0];
    end
    always @(posedge clk) begin
        cycles = cycles + 1;
        if (s_valid && s_ready) sent = sent + 1;
        if (m_valid) begin
            $display("R %h", m_data);
            got = got + 1;
            if (got == N) $finish;
        end
        if (cycles > MAX_CYCLES) begin
            $display("TIMEOUT");
            $finish;
        end
    end
endmodule
