# proc_reference.R - reference values from R's pROC (and base R's prop.test,
# mcnemar.test, binom.test) for freeair's statistics.
#
# usage: Rscript proc_reference.R OUTDIR
#
# Writes OUTDIR/data_K.csv (long format: model,id,patient_id,label,score,grp;
# two models scoring the same images; scores rounded so that ties are
# frequent, within and across classes) and OUTDIR/expected_K.csv (key,value)
# for several random datasets. The keys are read by stats_check_proc.py:
#   <model>.auc, <model>.delong_lo, <model>.delong_hi, <model>.delong_var
#   <model>.grp.<G>.auc (and _lo/_hi/_var) for subgroups with both classes
#   <model>.grp.<G>.single_class = 1 for a subgroup with one class only
#   pair.z, pair.p, pair.ci_lo, pair.ci_hi        (roc.test delong, paired)
#   <model>.fixed.<metric>_lo/_hi for sensitivity, specificity, ppv, npv,
#     accuracy at score >= 0.5 (prop.test(correct = FALSE): Wilson)
#   mcnemar.<sens|spec>.b, .c, .p at score >= 0.5 (binom.test when b + c < 25,
#     else mcnemar.test with continuity correction)
suppressPackageStartupMessages(library(pROC))

args <- commandArgs(trailingOnly = TRUE)
if (length(args) != 1) stop("usage: Rscript proc_reference.R OUTDIR")
outdir <- args[1]

fmt <- function(x) sprintf("%.17g", x)

put <- function(env, key, value) {
  env$keys <- c(env$keys, key)
  env$values <- c(env$values, fmt(value))
}

delong <- function(label, score) {
  r <- roc(label, score, levels = c(0, 1), direction = "<", quiet = TRUE)
  ci <- ci.auc(r, method = "delong", conf.level = 0.95)
  list(roc = r, auc = as.numeric(auc(r)), lo = ci[1], hi = ci[3],
       var = var(r, method = "delong"))
}

wilson <- function(x, n) {
  if (n == 0) return(c(NA, NA))
  suppressWarnings(prop.test(x, n, correct = FALSE)$conf.int[1:2])
}

mcnemar_p <- function(b, c) {
  if (b + c == 0) return(1)
  if (b + c < 25) return(binom.test(b, b + c, 0.5)$p.value)
  # Off-diagonal cells are all that McNemar's statistic uses.
  mcnemar.test(matrix(c(5, c, b, 5), 2), correct = TRUE)$p.value
}

# Each dataset: n images, prevalence, rounding (ties), effect sizes.
specs <- list(
  list(n = 60, prev = 0.5, digits = 1, eff = 1.0),
  list(n = 250, prev = 0.4, digits = 2, eff = 1.2),
  list(n = 600, prev = 0.5, digits = 2, eff = 0.8),
  list(n = 330, prev = 0.1, digits = 1, eff = 1.5),
  list(n = 24, prev = 0.5, digits = 1, eff = 0.7),
  list(n = 400, prev = 0.55, digits = 3, eff = 1.8)
)

for (k in seq_along(specs)) {
  s <- specs[[k]]
  set.seed(1000 + k)
  n <- s$n
  label <- as.integer(runif(n) < s$prev)
  label[1:2] <- c(0L, 1L) # both classes always present
  label[3:4] <- c(0L, 1L)
  latent <- rnorm(n) + s$eff * label
  s1 <- round(plogis(latent + rnorm(n, 0, 0.5) - 0.5 * s$eff), s$digits)
  s2 <- round(plogis(0.8 * latent + rnorm(n, 0, 0.8) - 0.4 * s$eff), s$digits)
  # Groups A and B mix both classes; group C holds negatives only.
  grp <- ifelse(runif(n) < 0.5, "A", "B")
  neg <- which(label == 0)
  grp[neg[seq(1, length(neg), by = 5)]] <- "C"
  grp[1:4] <- c("A", "A", "B", "B")
  ids <- sprintf("k%d_%04d", k, seq_len(n))
  pats <- sprintf("p%d_%04d", k, (seq_len(n) + 1) %/% 2) # pairs of images share a patient
  df <- rbind(
    data.frame(model = "m1", id = ids, patient_id = pats, label = label, score = s1, grp = grp),
    data.frame(model = "m2", id = ids, patient_id = pats, label = label, score = s2, grp = grp)
  )
  write.csv(df, file.path(outdir, sprintf("data_%d.csv", k)), row.names = FALSE, quote = FALSE)

  e <- new.env()
  e$keys <- character(0)
  e$values <- character(0)
  scores <- list(m1 = s1, m2 = s2)
  rocs <- list()
  for (m in names(scores)) {
    sc <- scores[[m]]
    d <- delong(label, sc)
    rocs[[m]] <- d$roc
    put(e, paste0(m, ".auc"), d$auc)
    put(e, paste0(m, ".delong_lo"), d$lo)
    put(e, paste0(m, ".delong_hi"), d$hi)
    put(e, paste0(m, ".delong_var"), d$var)
    for (g in c("A", "B", "C")) {
      sel <- grp == g
      if (length(unique(label[sel])) < 2) {
        put(e, sprintf("%s.grp.%s.single_class", m, g), 1)
        next
      }
      dg <- delong(label[sel], sc[sel])
      put(e, sprintf("%s.grp.%s.auc", m, g), dg$auc)
      if (sum(label[sel] == 1) >= 2 && sum(label[sel] == 0) >= 2) {
        put(e, sprintf("%s.grp.%s.delong_lo", m, g), dg$lo)
        put(e, sprintf("%s.grp.%s.delong_hi", m, g), dg$hi)
        put(e, sprintf("%s.grp.%s.delong_var", m, g), dg$var)
      }
    }
    pred <- sc >= 0.5
    tp <- sum(pred & label == 1); fn <- sum(!pred & label == 1)
    fp <- sum(pred & label == 0); tn <- sum(!pred & label == 0)
    cis <- list(sensitivity = wilson(tp, tp + fn), specificity = wilson(tn, tn + fp),
                ppv = wilson(tp, tp + fp), npv = wilson(tn, tn + fn),
                accuracy = wilson(tp + tn, n))
    for (nm in names(cis)) {
      if (is.na(cis[[nm]][1])) next
      put(e, sprintf("%s.fixed.%s_lo", m, nm), cis[[nm]][1])
      put(e, sprintf("%s.fixed.%s_hi", m, nm), cis[[nm]][2])
    }
  }
  t <- roc.test(rocs$m1, rocs$m2, method = "delong", paired = TRUE)
  put(e, "pair.z", t$statistic)
  put(e, "pair.p", t$p.value)
  put(e, "pair.ci_lo", t$conf.int[1])
  put(e, "pair.ci_hi", t$conf.int[2])
  # McNemar at score >= 0.5: b = m1 right and m2 wrong, c = the reverse.
  r1 <- (s1 >= 0.5) == (label == 1)
  r2 <- (s2 >= 0.5) == (label == 1)
  for (cls in c(1, 0)) {
    sel <- label == cls
    b <- sum(r1[sel] & !r2[sel]); c <- sum(!r1[sel] & r2[sel])
    nm <- if (cls == 1) "sens" else "spec"
    put(e, sprintf("mcnemar.%s.b", nm), b)
    put(e, sprintf("mcnemar.%s.c", nm), c)
    put(e, sprintf("mcnemar.%s.p", nm), mcnemar_p(b, c))
  }
  write.csv(data.frame(key = e$keys, value = e$values),
            file.path(outdir, sprintf("expected_%d.csv", k)), row.names = FALSE, quote = FALSE)
}
cat(sprintf("wrote %d datasets to %s\n", length(specs), outdir))
