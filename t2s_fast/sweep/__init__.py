"""`t2s-fast sweep`: train variants under one dollar cap, choose by held-out execution accuracy, report on Spider
dev."""
