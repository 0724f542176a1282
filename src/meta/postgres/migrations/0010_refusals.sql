-- A tag's refused promotions, newest first, for its release timeline.
CREATE INDEX events_refused_by_tag ON events(repo, tag, id) WHERE action = 'promote-refused';
