"""`mx run`: batch inference over files of rows, resumable, with all-or-nothing outputs."""
