"""DIV2K benchmark runners: methods × images → resumable result rows → summary tables and grids."""
