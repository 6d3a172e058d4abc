-- Version 5 of the SQLite store.
-- * sweep_cursors.generation: counts the claims of a shop's sweep lease and fences each
--   claim's writes, so a sweeper that lost its lease cannot move the cursor.

ALTER TABLE sweep_cursors ADD COLUMN generation INTEGER NOT NULL DEFAULT 0;
