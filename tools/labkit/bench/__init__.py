"""What measures: LoRA's costs for the benchmark page, and the workbook's own speed."""
