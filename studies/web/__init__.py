"""Participant-facing pages (the study app shell) and the staff-only stimulus preview.

The pages only render a shell and the study's public settings; everything a participant
does afterwards goes through the JSON API in `studies.views` (static/participant/app.js).
"""
